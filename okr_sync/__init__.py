"""okr-sync: keep OKR key-result numbers true, automatically, from where the work happens."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("okr-sync")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0+unknown"
