"""Build the processed IEMOCAP folds from the official release: ``python -m selfcross.prepare``.

Kept free of heavy imports: the worker processes import this package.
"""
