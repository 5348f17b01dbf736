"""From the runs' ``result.json`` files to the paper's tables and figure.

``results`` loads and checks the run records, ``select`` groups them into the cells of the
protocol grid, ``stats`` summarises and tests them, ``render`` writes them; ``table1``,
``table2`` and ``figure3`` build the paper's outputs beside its reported values (``paper``).
The command is ``python -m selfcross.tables``.
"""
