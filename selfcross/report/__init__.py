"""From the runs' records to the paper's tables and figures; rendering only.

The records are found and read by :mod:`selfcross.analysis` (``analysis.results``); here
``select`` groups them into the cells of the protocol grid, ``stats`` summarises and tests them,
``render`` writes them; ``table1``, ``table2``, ``table3``, ``table4``, ``figure3``, ``masking``
and ``tuning`` build the outputs beside the paper's reported values (``paper``); ``ablation``
and ``attention`` draw what the analysis commands computed. ``registry`` names every output of
``python -m selfcross.tables`` (``TABLES``); ``results`` is a deprecated alias of
``selfcross.analysis.results``. Nothing here builds a network.
"""
