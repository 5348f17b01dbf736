"""Finished runs: finding and loading them, and computing something new from them.

``results`` finds the runs' ``result.json`` files and reads them for the tables (``RunResult``,
``Skipped``, ``check_runs``); ``reload`` rebuilds a run from its folder with its best weights;
``ablation`` scores a run with modalities left out and loads those scores for the table;
``attention`` measures attention entropy and the share on padding; ``records`` defines, writes
and reads their files (``ablation.json``, ``attention.json``). ``selfcross.report`` renders what
this package loads; it never builds a network.
"""
