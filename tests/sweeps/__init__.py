"""Tests of sweeps: the selfcross sweeper, its launchers, SLURM (hydra_plugins/)."""
