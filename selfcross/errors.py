"""Errors a user can fix: reported as one line and a non-zero exit, never a traceback."""


class SelfcrossError(Exception):
    """Base class: the message is the whole explanation."""

    exit_code = 2


class DataError(SelfcrossError):
    """Bad or missing input data. The message starts with the offending path."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(SelfcrossError):
    """A configuration that cannot describe a valid experiment."""


class Interrupted(SelfcrossError):
    """Training was stopped by a signal; the run resumes from its last epoch when restarted."""

    exit_code = 143

    def __init__(self, message: str, exit_code: int = 143):
        super().__init__(message)
        self.exit_code = exit_code


class JobFailed(Exception):
    """A sweep job's one-line error, handed to the sweeper (which reports it and goes on)."""


class WriteError(SelfcrossError):
    """A file could not be written for lack of room (or of permission): one line naming the
    file and the free space where it was to go. Nothing incomplete was kept."""

    def __init__(self, path, reason: str, free: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write {self.path}: {reason} ({free})")
