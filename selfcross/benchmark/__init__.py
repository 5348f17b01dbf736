"""The library behind ``python -m selfcross.bench``: timing selfcross's networks against the
reference code's way of computing, layer by layer, and projecting Table 1's wall time.

- :mod:`.variants`: the settings, the (ours, baseline) network pair on shared weights, random
  batches, and a :class:`~.variants.Variant` that runs training steps and evaluation batches.
- :mod:`.timing`: device-synchronised timing, the alternating measurement, medians, the machine.
- :mod:`.network`: one JSON row per (model, modality), and the sweep over Table 1's cells.
- :mod:`.layers`: the per-layer profile of a tri-modal Cross+Self network.
- :mod:`.projection`: IEMOCAP epoch seconds and the wall time of Table 1.
- :mod:`.group`: ``--seed-group K``, a seed group against its K single runs.
- :mod:`.report`: the rows as a readable table.
- :mod:`.demo_groups`: the demo grid as single runs and as seed groups, compared from their
  records (``scripts/compare_seed_group_demo.py``).
"""
