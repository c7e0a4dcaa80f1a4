"""Problems of a spec, collected rather than raised one at a time: a user fixes them all in one edit."""

from __future__ import annotations

from pathlib import Path

from bvvtok.errors import BvvtokError


class Problems:
    """`add(key, message)` records "KEY: message", KEY under the prefix of `under`; `raise_if_any` raises them all."""

    def __init__(self, prefix: str = "", found: list[str] | None = None) -> None:
        self.prefix, self.found = prefix, found if found is not None else []

    def under(self, key: str) -> Problems:
        return Problems(f"{self.prefix}{key}.", self.found)

    def add(self, key: str, message: str) -> None:
        self.found.append(f"{(self.prefix + key).rstrip('.')}: {message}")

    def raise_if_any(self, path: Path) -> None:
        if self.found:
            count = f"{len(self.found)} problem{'s' if len(self.found) > 1 else ''}"
            raise BvvtokError(f"{path}: {count}, nothing was built:\n" + "\n".join(f"  {p}" for p in self.found))
