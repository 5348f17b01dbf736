"""What a training run needs around the model: the experiment itself and its support.

``experiment`` (train, test, write the record), ``record`` (the typed ``result.json``),
``resume`` (configuration hash, skip/resume/prune), ``tracking`` and ``workspace`` (W&B),
``runtime`` (threads, TF32, compile) and ``gpus`` (GPU slots of the ``local_gpus`` launcher).
"""
