"""Hydra plugins of selfcross: the sweep filter and the multi-GPU joblib launcher."""
