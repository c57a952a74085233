"""A data team's own metrics: a named SQL query over the mirror, or a Python function.

They come from the OKR file's ``metrics:`` section or from packages, through the
``okr_sync.metrics`` entry-point group, and then behave like the built-in metrics: key
results name them, ``pct_change`` compares them, and measurements keep their lineage.

A SQL metric is checked before it ever runs: sqlglot must parse it as exactly one query
(SELECT, UNION, WITH … SELECT) with no clause that writes, locks or changes settings, and
its only placeholders must be named ones from :data:`PERIOD_PARAMS` or the metric's own
``params``. Values are always bound (SQLAlchemy ``text`` with typed bind parameters), never
formatted into the statement. It then runs read-only and confined to the mirror
(:data:`~okr_targets.models.METRIC_TABLES`; PostgreSQL: a read-only savepoint as the
role :data:`~okr_targets.store.METRICS_ROLE`; SQLite: ``PRAGMA query_only`` and an
authorizer), and so do its ``records``. Python metrics run under the same guard.
Anything but one number (or NULL: nothing to measure) is a
:class:`~transforms.metrics.MetricError` naming the metric. They are put together with the
built-in metrics in the catalog (:mod:`transforms.catalog`), never registered globally.
"""

from __future__ import annotations

import pkgutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from importlib.metadata import entry_points
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, create_model
from sqlalchemy import (
    CompoundSelect,
    Date,
    Select,
    String,
    bindparam,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from okr_targets.config import CustomMetricSpec
from okr_targets.models import METRIC_TABLES, MIRROR, UTCDateTime
from okr_targets.periods import Period
from okr_targets.store import METRICS_ROLE
from transforms.lineage import count_records, record_select
from transforms.metric import Metric, MetricError, MetricResult, RecordRef, RecordSelect
from transforms.sql import OWNER, TEAM

ENTRY_POINT_GROUP = "okr_sync.metrics"

PERIOD_PARAMS: dict[str, Any] = {
    "period_start": UTCDateTime(),  # the period's first instant (local midnight), in UTC
    "period_end": UTCDateTime(),  # the instant after its end, in UTC
    "period_start_date": Date(),  # its first local day, for date columns such as close_on
    "period_end_date": Date(),  # the local day after its last
}
"""Bound for every SQL metric; ``owner`` and ``team`` (default NULL) and the metric's own
``params`` are bound too."""

FILTERS: dict[str, Any] = {"owner": Annotated[Any, OWNER], "team": Annotated[Any, TEAM]}
"""The filters every SQL metric takes, checked against the mirror as the built-ins' are."""

LINEAGE_SQL = """WITH listed(source, source_id) AS (
{records}
)
SELECT DISTINCT CAST(source AS VARCHAR) AS source, CAST(source_id AS VARCHAR) AS source_id
FROM listed"""
"""A SQL metric's ``records`` query as lineage: its two columns by position, each row once."""

WRITE_NODES = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Into",
    "Lock", "Pragma", "Set", "Copy", "TruncateTable", "Transaction", "Commit", "Rollback",
    "Use", "Grant", "Analyze", "Attach", "Detach", "LoadData", "Cache", "Uncache", "Refresh",
)  # fmt: skip
"""sqlglot's node types a read-only query must not hold (those this sqlglot has)."""


UNCONFINED_FUNCTIONS = (
    "set_config", "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema",
    "cursor_to_xml", "cursor_to_xmlschema", "ts_stat", "dblink",
)  # fmt: skip
"""PostgreSQL functions a query could leave its confinement with: ``set_config('role', …)``
undoes ``SET ROLE`` when the store's user is a superuser, and the others run SQL from text
(the ``dblink_*`` family too)."""


class CustomMetricError(MetricError):
    """A custom metric's definition is unusable; the message names the metric."""


def check_sql(name: str, sql: str, allowed: set[str]) -> set[str]:
    """The query's bind parameter names; raises CustomMetricError unless it is one SELECT."""
    import sqlglot  # loaded for SQL metrics only: a sync without one never parses SQL
    from sqlglot import exp

    writes = tuple(getattr(exp, node) for node in WRITE_NODES if hasattr(exp, node))
    try:
        statements = [s for s in sqlglot.parse(sql) if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        first = str(exc).splitlines()[0]
        raise CustomMetricError(f"metric {name!r}: its SQL cannot be parsed: {first}") from None
    if len(statements) != 1:
        raise CustomMetricError(
            f"metric {name!r}: its SQL must be one SELECT statement, not {len(statements)}"
        )
    query = statements[0]
    if not isinstance(query, exp.Query):
        kind = query.key.upper()
        raise CustomMetricError(f"metric {name!r}: its SQL must be a SELECT, not {kind}")
    for node in query.walk():
        if isinstance(node, writes):
            raise CustomMetricError(
                f"metric {name!r}: its SQL may only read; it contains {node.key.upper()}"
            )
        called = node.name if isinstance(node, exp.Anonymous) else ""
        if called.lower().startswith(UNCONFINED_FUNCTIONS):
            raise CustomMetricError(
                f"metric {name!r}: its SQL may not call {called}: it could change settings "
                "or run SQL from text, past the confinement to the mirror"
            )
        if isinstance(node, exp.Parameter) or (
            isinstance(node, exp.Placeholder) and node.this is None
        ):
            raise CustomMetricError(
                f"metric {name!r}: use named parameters such as :period_start, not {node.sql()}"
            )
    names = {str(node.this) for node in query.find_all(exp.Placeholder)}
    names |= set(text(sql).compile().binds)  # what SQLAlchemy will bind, should they differ
    unknown = sorted(names - allowed)
    if unknown:
        raise CustomMetricError(
            f"metric {name!r}: unknown parameter(s) {', '.join(':' + n for n in unknown)}; "
            f"available: {', '.join(':' + n for n in sorted(allowed))}"
        )
    return names


SQLITE_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                  sqlite3.SQLITE_RECURSIVE}  # fmt: skip
"""What SQLite's authorizer lets a custom metric prepare: reads, functions, recursive CTEs."""


Authorizer = Callable[[int, str | None, str | None, str | None, str | None], int]


def _confined_reader(tables: set[str]) -> Authorizer:
    """An authorizer (``sqlite3.Connection.set_authorizer``) that lets statements read the
    metric tables only: a read of any other table of the store (``tables``, with
    ``sqlite_master``) is refused, and so is every statement that is no SELECT (ATTACH,
    PRAGMA, writes). A name that is no table of the store is a WITH query's own: a count
    over a recursive CTE reads it by name."""

    def authorize(
        action: int, table: str | None, name: str | None, database: str | None, _: str | None
    ) -> int:
        if action not in SQLITE_ALLOWED:
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION and (name or "").lower() == "load_extension":
            return sqlite3.SQLITE_DENY
        elsewhere = database is not None or table in tables  # not a WITH query's own
        if action == sqlite3.SQLITE_READ and table not in METRIC_TABLES and elsewhere:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    return authorize


def _sqlite_tables(session: Session) -> set[str]:
    """Every table and view of the store, the schema tables' own names too."""
    listed = session.execute(
        text("SELECT name FROM sqlite_master UNION SELECT name FROM sqlite_temp_master")
    ).scalars()
    return {*listed, "sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}


@contextmanager
def _confined_postgresql(session: Session, name: str) -> Iterator[None]:
    """A read-only savepoint as the metrics role; rolled back, so the role, the read-only
    mode and any error end with it and the sync's transaction goes on as it was."""
    savepoint = session.begin_nested()
    try:
        session.execute(text("SET TRANSACTION READ ONLY"))
        try:
            session.execute(text(f'SET LOCAL ROLE "{METRICS_ROLE}"'))
        except SQLAlchemyError as exc:
            raise MetricError(
                f"metric {name!r}: cannot run as the role {METRICS_ROLE} that may read the "
                f"mirror only ({_first_line(exc)}); the store's user lacks the rights to set "
                "it up: see docs/custom-metrics.md"
            ) from None
        yield
        if session.scalar(text("SELECT current_user")) != METRICS_ROLE:  # set_config('role')
            raise MetricError(f"metric {name!r} left the role {METRICS_ROLE}: not measured")
    finally:
        savepoint.rollback()


@contextmanager
def _confined_sqlite(session: Session) -> Iterator[None]:
    """``PRAGMA query_only`` and an authorizer for the metric tables, both removed after."""
    dbapi = session.connection().connection.dbapi_connection
    assert isinstance(dbapi, sqlite3.Connection), "the store's SQLite driver is sqlite3"
    tables = _sqlite_tables(session)
    session.execute(text("PRAGMA query_only = ON"))
    dbapi.set_authorizer(_confined_reader(tables))  # also re-prepares cached statements
    try:
        yield
    finally:
        dbapi.set_authorizer(None)
        session.execute(text("PRAGMA query_only = OFF"))


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return (str(orig if orig is not None else exc).strip().splitlines() or ["?"])[0]


def _refused(exc: SQLAlchemyError) -> bool:
    """The database refused for want of a privilege (not a bad column or a bad value)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "42501" or (
        getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_AUTH
    )


@contextmanager
def read_only(session: Session, name: str) -> Iterator[None]:
    """Run the block confined to the metric tables, read-only; errors come back as one line
    naming the metric. PostgreSQL: a read-only savepoint as :data:`METRICS_ROLE`; SQLite:
    ``PRAGMA query_only`` and an authorizer (docs/custom-metrics.md)."""
    dialect = session.get_bind().dialect.name
    try:
        if dialect == "postgresql":
            with _confined_postgresql(session, name):
                yield
        elif dialect == "sqlite":
            with _confined_sqlite(session):
                yield
        else:
            yield
    except SQLAlchemyError as exc:
        reason = _first_line(exc)
        if _refused(exc):
            reason += f" (custom metrics may read only {', '.join(sorted(METRIC_TABLES))})"
        raise MetricError(f"metric {name!r}: the database refused its query: {reason}") from None


def _params_model(name: str, defaults: dict[str, Any]) -> type[BaseModel]:
    """Parameters a key result may pass: owner, team and the metric's own, nothing else."""
    fields: dict[str, Any] = {key: (kind, None) for key, kind in FILTERS.items()}
    fields |= {key: (Any, value) for key, value in defaults.items()}
    model: type[BaseModel] = create_model(
        f"{name}_params", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


def one_number(name: str, value: Any) -> float | None:
    """The value as a float; None for NULL; anything else is an error naming the metric."""
    if value is None:
        return None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return float(value)
    raise MetricError(
        f"metric {name!r} returned {type(value).__name__} {value!r}; "
        "it must return one number (or NULL when there is nothing to measure)"
    )


def _bound_query(query: str, names: set[str], bound: dict[str, Any]) -> TextClause:
    """The query with only the parameters it names, each bound with its type and value
    (unique: pct_change's lineage holds the query twice, for two periods)."""
    return text(query).bindparams(
        *(
            bindparam(n, bound[n], type_=PERIOD_PARAMS.get(n, String()), unique=True)
            for n in sorted(names)
        )
    )


def sql_metric(
    name: str,
    sql: str,
    *,
    description: str = "",
    unit: str = "",
    params: dict[str, Any] | None = None,
    records: str | None = None,
    entity: str | None = None,
) -> Metric[Any]:
    """A metric from one SELECT returning one number; ``records`` (a SELECT of ``source,
    source_id`` rows of ``entity``) names the records behind it, for lineage."""
    defaults = dict(params or {})
    allowed = set(PERIOD_PARAMS) | set(FILTERS) | set(defaults)
    used = check_sql(name, sql, allowed)
    if records is not None:
        if entity not in MIRROR:
            raise CustomMetricError(
                f"metric {name!r}: `records` needs `entity:`, one of {sorted(MIRROR)}"
            )
        used_by_records = check_sql(name, records, allowed)
    model = _params_model(name, defaults)

    def lineage(session: Session, bound: dict[str, Any]) -> list[RecordRef]:
        if records is None or entity is None:
            return []
        query = _bound_query(LINEAGE_SQL.format(records=records), used_by_records, bound)
        return [RecordRef(entity, *row) for row in session.execute(query).tuples()]

    def compute(session: Session, period: Period, values: BaseModel) -> MetricResult:
        bound = {
            "period_start": period.start_at,
            "period_end": period.end_at,
            "period_start_date": period.start,
            "period_end_date": period.end,
            **values.model_dump(),
        }
        with read_only(session, name):
            rows = session.execute(_bound_query(sql, used, bound)).all()
            listed = lineage(session, bound)
        # The records are read here, confined: the lineage written later from their ids
        # never runs the metric's own SQL outside the confinement.
        refs, count = record_select(listed), len(listed)
        if len(rows) != 1 or len(rows[0]) != 1:
            columns = len(rows[0]) if rows else 0
            raise MetricError(
                f"metric {name!r} must return one row with one number; its query returned "
                f"{len(rows)} row(s) of {columns} column(s)"
            )
        value = one_number(name, rows[0][0])
        details = {"custom": "sql", "query": sql, "params": values.model_dump()}
        return MetricResult(value, unit, refs, details, count)

    return Metric(name, description or "custom SQL metric", model, compute)


PythonMetric = Callable[[Session, Period, dict[str, Any]], Any]


def as_record_select(records: Any) -> RecordSelect | None:
    """A Python metric's records: a SELECT of ``(entity, source, source_id)``, or RecordRefs
    listed in Python, which become one."""
    if records is None or isinstance(records, Select | CompoundSelect):
        return records
    return record_select(records)


def python_metric(
    name: str,
    function: PythonMetric,
    *,
    description: str = "",
    unit: str = "",
    params: dict[str, Any] | None = None,
) -> Metric[Any]:
    """A metric from ``function(session, period, params)``, returning a number, None or a
    MetricResult; it runs under the same read-only guard as SQL metrics."""
    model = _params_model(name, dict(params or {}))
    where = f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', '?')}"

    def compute(session: Session, period: Period, values: BaseModel) -> MetricResult:
        with read_only(session, name):
            try:
                returned = function(session, period, values.model_dump())
            except (MetricError, SQLAlchemyError):  # already say what went wrong
                raise
            except Exception as exc:
                raise MetricError(
                    f"metric {name!r} ({where}) failed: {type(exc).__name__}: {exc}"
                ) from None
            if isinstance(returned, MetricResult):
                returned.records = as_record_select(returned.records)
                returned.record_count = count_records(session, returned.records)
        if isinstance(returned, MetricResult):
            returned.value = one_number(name, returned.value)
            returned.details.setdefault("custom", "python")
            return returned
        value = one_number(name, returned)
        return MetricResult(value, unit, None, {"custom": "python", "function": where})

    doc = (getattr(function, "__doc__", None) or "").strip()
    return Metric(name, description or doc or "custom Python metric", model, compute)


def resolve_function(name: str, target: str) -> PythonMetric:
    """``package.module:function`` (or dotted) to the callable; errors name the metric."""
    try:
        function = pkgutil.resolve_name(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CustomMetricError(f"metric {name!r}: cannot import {target!r}: {exc}") from None
    if not callable(function):
        raise CustomMetricError(f"metric {name!r}: {target!r} is not a function")
    return function


def file_metric(name: str, spec: CustomMetricSpec) -> Metric[Any]:
    """The metric an OKR file's ``metrics:`` entry defines (SQL checked, function imported)."""
    if spec.sql is not None:
        return sql_metric(
            name,
            spec.sql,
            description=spec.description,
            unit=spec.unit,
            params=spec.params,
            records=spec.records,
            entity=spec.entity,
        )
    function = resolve_function(name, str(spec.python))
    return python_metric(
        name, function, description=spec.description, unit=spec.unit, params=spec.params
    )


def _unloadable(name: str, reason: str) -> Metric[Any]:
    """A metric whose package does not import: key results naming it fail with why."""

    def compute(session: Session, period: Period, values: BaseModel) -> MetricResult:
        raise MetricError(f"metric {name!r}: {reason}")

    permissive = create_model(f"{name}_params", __config__=ConfigDict(extra="allow"))
    return Metric(name, reason, permissive, compute)


def entry_point_metrics() -> list[tuple[Metric[Any], str]]:
    """Every ``okr_sync.metrics`` entry point's metric, with where it comes from.

    An entry point loads a ``transforms.metric.Metric`` (full control: its own pydantic
    parameters and lineage) or a plain function ``(session, period, params) -> number``.
    A package that does not load gives a metric that fails with why, so a broken package
    never hides the other metrics.
    """
    found = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"package {entry.dist.name if entry.dist else '?'} ({entry.value})"
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken package must not hide the other metrics
            found.append((_unloadable(entry.name, f"{origin} cannot be loaded: {exc}"), origin))
            continue
        metric = loaded if isinstance(loaded, Metric) else python_metric(entry.name, loaded)
        if metric.name != entry.name:
            reason = f"{origin} names it {metric.name!r}; the entry point must use that name"
            metric = _unloadable(entry.name, reason)
        found.append((metric, origin))
    return found
