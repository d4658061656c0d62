"""Storage: one protocol (:mod:`.base`), an in-memory and a Redis implementation."""

from .base import Completion, CompletionResult, ErrorRecord, Fetched, RunSpec, Storage
from .memory import MemoryStorage

__all__ = [
    "Completion",
    "CompletionResult",
    "ErrorRecord",
    "Fetched",
    "MemoryStorage",
    "RunSpec",
    "Storage",
]
