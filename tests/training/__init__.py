"""Tests of selfcross/training/: one run from composition to result.json, resume, tuning."""
