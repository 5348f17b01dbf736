"""Tests of selfcross/benchmark/ and python -m selfcross.bench."""
