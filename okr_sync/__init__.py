"""okr-sync: keep OKR key-result numbers true, automatically, from where the work happens."""

from flows.version import __version__

__all__ = ["__version__"]
