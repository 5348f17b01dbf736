"""Shared builders of the tests: hand-made folds, fake releases, run records, readers."""
