"""``python -m okr_sync.cli``: the same as the ``okr-sync`` console script."""

from okr_sync.cli import app

app()
