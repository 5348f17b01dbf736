"""Tests of finished runs: loading result.json files, ablations, attention maps."""
