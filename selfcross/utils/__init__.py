"""Small helpers with no better home: ``io`` (atomic file writing, the git commit)."""
