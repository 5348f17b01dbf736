"""Build processed folds (IEMOCAP, MELD) from the public releases: ``python -m selfcross.prepare``.

``build`` picks the dataset's preparation; ``iemocap`` and ``meld`` prepare each dataset from its
release reader (``iemocap_release``, ``meld_release``) with the shared ``steps``; ``audio``,
``video``, ``resnet`` and ``text`` extract features, ``cache`` keeps them per utterance,
``extract`` runs the extraction workers, ``splits`` assigns folds, ``writer`` writes them,
``settings`` reads ``conf/prepare.yaml``. Kept free of heavy imports: the worker processes
import this package.
"""
