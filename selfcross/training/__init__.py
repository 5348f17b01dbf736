"""What a training run needs around the model: the experiment itself and its support.

``experiment`` (train, test, write the record), ``record`` (the typed ``result.json``),
``resume`` (configuration hash, skip/resume/prune), ``rundir`` (what a run may do to its
folder, the per-job lock), ``tracking`` and ``workspace`` (W&B), ``runtime`` (threads, TF32,
compile), ``gpus`` (GPU slots of the ``local_gpus`` launcher), and tuning: ``tuning`` (the study
loop), ``search`` (the search space), ``study`` (the stored trials) and ``tuned`` (``best.json``
and the ``experiment=tuned`` runs).
"""
