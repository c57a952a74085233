"""The logger a step writes to: the Prefect run's inside a run, a plain one outside."""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


def run_logger() -> Logger:
    """Prefect's run logger inside a run; a plain logger when a task is called via ``.fn()``."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("okr_sync")
