"""Stage-result cache with chained keys (darktable's pixelpipe idea).

A stage's key hashes the previous stage's key with the stage's expert id, version, model and
parameters, so changing stage k invalidates stages k and later only. Strengths are not part of
any key: a strength change is a blend of cached outputs, never a re-run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Generic, Mapping, Optional, TypeVar

import numpy as np

T = TypeVar("T")


def image_key(image: np.ndarray) -> str:
    """A content hash of an image array (shape, dtype and bytes)."""
    h = hashlib.sha256()
    h.update(repr((image.shape, str(image.dtype))).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()[:32]


def chain_key(previous: str, expert_id: str, version: str, params: Mapping[str, Any]) -> str:
    """The key of a stage given the key of its input."""
    payload = json.dumps([previous, expert_id, version, dict(sorted(params.items()))], default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class StageCache(Generic[T]):
    """Least-recently-used cache bounded by the total bytes of the arrays it holds.

    ``size_of(value)`` tells the bytes a value holds; the default counts numpy arrays found
    in its ``__dict__`` and in dicts there (each array once).
    """

    def __init__(self, max_bytes: int = 2 * 1024**3) -> None:
        self.max_bytes = int(max_bytes)
        self._items: "OrderedDict[str, tuple[T, int]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def size_of(value: Any) -> int:
        if isinstance(value, np.ndarray):
            return value.nbytes
        arrays: dict[int, np.ndarray] = {}
        for v in getattr(value, "__dict__", {}).values():
            for a in (v.values() if isinstance(v, dict) else (v,)):
                if isinstance(a, np.ndarray):
                    arrays[id(a)] = a
        return sum(a.nbytes for a in arrays.values())

    def get(self, key: str) -> Optional[T]:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: str, value: T) -> None:
        size = self.size_of(value)
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes
