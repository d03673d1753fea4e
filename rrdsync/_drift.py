"""The error every library adapter raises when an upgrade moved an internal it uses."""

from __future__ import annotations


class LibraryDrift(RuntimeError):
    """An upgrade of a library moved an internal that rrdsync's adapter relies on."""

    def __init__(self, library: str, name: str, written_for: str, adapter: str) -> None:
        """``adapter``: the adapter's module name (``__name__``), shown as its file."""
        super().__init__(
            f"{library}: internal {name!r} moved or changed (rrdsync's adapter was written "
            f"for {written_for}); update {adapter.replace('.', '/')}.py or the version pin "
            f"in pyproject.toml")
        self.library = library
        self.name = name
