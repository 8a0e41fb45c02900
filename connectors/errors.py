"""The one error every destination raises, with what went wrong and whether to retry."""

from __future__ import annotations

from enum import StrEnum


class Problem(StrEnum):
    UNREACHABLE = "unreachable"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    PERMISSION = "permission"
    HOST_KEY = "host_key"
    WRITE = "write"
    CONFIG = "config"
    NOT_ALLOWED = "not_allowed"


# What a user reads first; the message says the specifics.
PROBLEM_LABELS = {
    Problem.UNREACHABLE: "Unreachable host",
    Problem.AUTH: "Bad credentials",
    Problem.NOT_FOUND: "Missing bucket, container or folder",
    Problem.PERMISSION: "Permission denied",
    Problem.HOST_KEY: "Host key mismatch",
    Problem.WRITE: "Write failed",
    Problem.CONFIG: "Invalid settings",
    Problem.NOT_ALLOWED: "Address not allowed",
}


class DestinationError(Exception):
    """A destination failed. `retryable` says whether trying again later may help
    (a host that doesn't answer) or not (a refused password)."""

    def __init__(self, problem: Problem, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.retryable = problem == Problem.UNREACHABLE if retryable is None else retryable

    @property
    def label(self) -> str:
        return PROBLEM_LABELS[self.problem]

    def __str__(self) -> str:
        return self.message


class HostKeyNotTrusted(DestinationError):
    """The SFTP server answered, but no host key is pinned yet: the user must confirm it."""

    def __init__(self, fingerprint: str):
        super().__init__(
            Problem.HOST_KEY,
            f"the server's host key {fingerprint} is not trusted yet: check it and confirm it on the connector page",
        )
        self.fingerprint = fingerprint
