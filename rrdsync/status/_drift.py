"""The error both library adapters raise when an upgrade moved an internal they use."""

from __future__ import annotations


class LibraryDrift(RuntimeError):
    """An upgrade of a library moved an internal that rrdsync's adapter relies on."""

    def __init__(self, library: str, name: str, written_for: str, adapter: str) -> None:
        super().__init__(
            f"{library}: internal {name!r} moved or changed (rrdsync's adapter was written "
            f"for {written_for}); update rrdsync/status/{adapter} or the version pin in "
            f"pyproject.toml")
        self.library = library
        self.name = name
