"""Storages: where tasks live. `MemoryStorage` is embedded; both follow the `Storage` protocol."""

from .base import Storage
from .memory import MemoryStorage

__all__ = ["MemoryStorage", "Storage"]
