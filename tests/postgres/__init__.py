"""Tuning workers on a throwaway PostgreSQL server (marker postgres, `make test-postgres`)."""
