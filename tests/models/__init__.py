"""Tests of selfcross/models/: networks, attention kernels, the LightningModule, metrics."""
