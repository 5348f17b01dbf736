"""Small helpers with no better home: ``io`` (atomic file writing, the git commit) and ``values``
(values read back from files, checked against a composed configuration)."""
