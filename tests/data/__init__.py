"""Tests of selfcross/data/: the fold reader, the synthetic generator, the data checks."""
