"""The installed okr-sync version, recorded on every run and measurement."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("okr-sync")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0+unknown"
