"""Tests of the commands as a user runs them: exit statuses and one-line errors."""
