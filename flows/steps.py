"""How a step that is a Prefect task runs: as a task inside a run, as a plain call outside.

Prefect 3 records every task call as a task run, even outside a flow, so a task called
there needs a Prefect API: without ``PREFECT_API_URL`` it starts Prefect's temporary server
(seconds), or fails where that is not allowed. The CLI's sync without a Prefect server
runs the steps outside any run; inside a flow run (or a task run) they stay tasks, each
a task run in the UI. :func:`prefect_api` says whether there is an API to report to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from prefect import Task
from prefect.context import FlowRunContext, TaskRunContext
from prefect.settings import get_current_settings

P = ParamSpec("P")
R = TypeVar("R")


def step(task: Task[P, R]) -> Callable[P, R]:
    """``task`` itself inside a Prefect run; its plain function outside one."""
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return task.fn
    return cast(Callable[P, R], task)


def prefect_api() -> str | None:
    """The Prefect API this process reports to (``PREFECT_API_URL``), if one is set."""
    return get_current_settings().api.url
