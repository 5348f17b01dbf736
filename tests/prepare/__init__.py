"""Tests of selfcross/prepare/: folds from fake IEMOCAP and MELD releases."""
