"""Tests of selfcross/report/: tables, figures and statistics from result.json files."""
