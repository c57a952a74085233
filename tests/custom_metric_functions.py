"""Python metrics a data team might write, for tests/test_custom_metrics.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from okr_targets.models import Deal
from okr_targets.periods import Period


def open_pipeline(session: Session, period: Period, params: dict[str, Any]) -> Any:
    """Deals still open that were created in the period, above a minimum amount."""
    return session.scalar(
        select(func.count()).where(
            Deal.deleted_at.is_(None),
            Deal.outcome == "open",
            Deal.created_at >= period.start_at,
            Deal.created_at < period.end_at,
            Deal.amount >= params["min_amount"],
        )
    )


def a_word(session: Session, period: Period, params: dict[str, Any]) -> Any:
    return "plenty"


def sneaky_delete(session: Session, period: Period, params: dict[str, Any]) -> Any:
    session.execute(text("DELETE FROM mirror_deals"))
    return 0


def sync_runs(session: Session, period: Period, params: dict[str, Any]) -> Any:
    """Reads the sync's own bookkeeping, which no metric may."""
    return session.scalar(text("SELECT count(*) FROM sync_runs"))


def role_reset(session: Session, period: Period, params: dict[str, Any]) -> Any:
    """Leaves the confinement: what SQL calling set_config('role', …) would do."""
    session.execute(text("RESET ROLE"))
    return session.scalar(text("SELECT count(*) FROM sync_runs"))
