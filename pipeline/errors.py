"""Typed outcomes for rows (DESIGN §2).

A stage signals what happened to a row by raising one of these from its
`process_row`/`process_batch`; the runner turns them into terminal states:

- `Filtered(reason)`            → `filtered:<reason>` (the row is fine, we do not want it)
- `PermanentError(cls, msg)`    → `failed:<stage>:<cls>` (404, private video, undecodable file)
- `TransientError(cls, msg)`    → retried with backoff, then `failed:<stage>:<cls>`
- any other exception           → `failed:<stage>:<ExceptionClassName>`
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot run; the message names the file, the field and the problem."""


class RunRefused(RuntimeError):
    """A rerun whose config or inputs differ from plan.json (without --new-run)."""


class RunAborted(RuntimeError):
    """The failure rate went over the configured threshold; committed work is kept."""


class Filtered(Exception):
    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason
        self.message = message


class StageError(Exception):
    transient = False

    def __init__(self, error_class: str, message: str = ""):
        super().__init__(f"{error_class}: {message}" if message else error_class)
        self.error_class = error_class
        self.message = message


class PermanentError(StageError):
    transient = False


class TransientError(StageError):
    transient = True


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/CPU allocator out-of-memory errors (torch raises several types)."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except Exception:  # torch missing or old
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
