"""Build processed folds (IEMOCAP, MELD) from the public releases: ``python -m selfcross.prepare``.

Kept free of heavy imports: the worker processes import this package.
"""
