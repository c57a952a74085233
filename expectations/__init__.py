"""Great Expectations suites for canonical records, and the batch validator that applies them.

The suites are the JSON files beside this module, one per canonical entity, readable
without the code. A batch is validated as one pandas DataFrame (validating page by page
is several times slower); rows that fail any expectation are returned with the names of
the expectations they failed, so the flow can quarantine them and count them.

Before the suites, every row is checked against its mirror table's columns: a value of the
wrong type, text longer than its column holds (or than ``MAX_TEXT``), or text holding
U+FFFD (what a decoder puts where the source sent bytes that are not UTF-8) is rejected
with a reason naming the column, and so is text no store can keep: a NUL character
(PostgreSQL's text refuses it) or a lone surrogate (not encodable as UTF-8). Such a row
would otherwise make the store refuse the whole batch (on every run), or an expectation
break for the whole batch, or keep mangled text.

Suites may compare with values known only when a batch is validated: ``{"$PARAMETER":
"latest_time"}`` (a year past now: nothing was created or changed later) and
``{"$PARAMETER": "latest_day"}`` (ten years past today: the furthest plausible planned day)
and ``{"$PARAMETER": "earliest_day"}`` (1900-01-01).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Boolean, Date, Integer, Numeric, String
from sqlalchemy.types import TypeDecorator

from connectors.base import Rejected
from okr_targets.models import MIRROR, UNSTORABLE, supplied_columns

SUITES = Path(__file__).parent
MAX_TEXT = 10_000
"""The longest text kept in an unbounded (Text) mirror column, e.g. a name: anything longer
is a paste or an export gone wrong, not a name."""
REPLACEMENT = "\ufffd"
LATEST_TIME_SLACK = timedelta(days=366)
LATEST_DAY_SLACK = timedelta(days=3653)
EARLIEST_DAY = date(1900, 1, 1)

Row = TypeVar("Row", bound=Mapping[str, object])
"""A row to validate: a canonical row (``connectors.canonical``), or any mapping like one."""

Check = Callable[[Any], str | None]
"""A column check: None when the (non-null) value fits, else what is wrong with it."""


def parameters(now: datetime | None = None) -> dict[str, Any]:
    """The ``$PARAMETER`` values suites may use, as of ``now`` (default: the clock)."""
    now = now or datetime.now(UTC)
    return {
        "latest_time": now + LATEST_TIME_SLACK,
        "latest_day": (now + LATEST_DAY_SLACK).date(),
        "earliest_day": EARLIEST_DAY,
    }


@dataclass(frozen=True)
class _TextCheck:
    limit: int

    def __call__(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{type(value).__name__} is not text"
        if len(value) > self.limit:
            return f"{len(value)} characters, more than the {self.limit} kept"
        if REPLACEMENT in value:
            return "holds U+FFFD: the source sent bytes that are not UTF-8"
        if (found := UNSTORABLE.search(value)) is not None:
            return _unstorable(found.group())
        return None


def _unstorable(char: str) -> str:
    if char == "\x00":
        return "holds a NUL character (U+0000), which the store cannot keep"
    return f"holds a lone surrogate (U+{ord(char):04X}), which is not text the store can keep"


@dataclass(frozen=True)
class _NumberCheck:
    """Numbers whose integer part has at most ``digits`` digits (None: any)."""

    digits: int | None

    @cached_property
    def bound(self) -> Decimal | None:
        return None if self.digits is None else Decimal(10) ** self.digits

    def __call__(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return f"{type(value).__name__} is not a number"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not a finite number"
        if isinstance(value, Decimal) and not value.is_finite():
            return f"{value} is not a finite number"
        if self.bound is not None and abs(Decimal(value)) >= self.bound:
            return f"{value} has more than the {self.digits} integer digits kept"
        return None


def _integer_check(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{type(value).__name__} is not an integer"
    return None


def _bool_check(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{type(value).__name__} is not true/false"


def _time_check(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return f"{type(value).__name__} is not a timestamp"
    if value.utcoffset() is None:
        return "is a timestamp without a time zone"
    return None


def _date_check(value: Any) -> str | None:
    if isinstance(value, datetime) or not isinstance(value, date):
        return f"{type(value).__name__} is not a date"
    return None


@cache
def column_checks(entity: str) -> dict[str, Check]:
    """Column -> its type/size check, from the entity's mirror table (run_id is the flow's)."""
    model = MIRROR.get(entity)
    if model is None:
        return {}
    checks: dict[str, Check] = {}
    for column in supplied_columns(model):
        kind = column.type
        if isinstance(kind, TypeDecorator):  # UTCDateTime, the mirror's only one
            checks[column.name] = _time_check
        elif isinstance(kind, String):  # Text is a String without a length
            checks[column.name] = _TextCheck(kind.length or MAX_TEXT)
        elif isinstance(kind, Numeric):
            digits = None if kind.precision is None else kind.precision - (kind.scale or 0)
            checks[column.name] = _NumberCheck(digits)
        elif isinstance(kind, Boolean):
            checks[column.name] = _bool_check
        elif isinstance(kind, Integer):
            checks[column.name] = _integer_check
        elif isinstance(kind, Date):
            checks[column.name] = _date_check
    checks.pop("run_id", None)
    return checks


def column_findings(entity: str, row: Mapping[str, object]) -> list[str]:
    """What in ``row`` its mirror table cannot hold faithfully, one reason per column."""
    findings = []
    for name, check in column_checks(entity).items():
        value = row.get(name)
        if value is None:
            continue
        problem = check(value)
        if problem is not None:
            findings.append(f"column({name}): {problem}")
    return findings


_FITS = {_integer_check: (int,), _bool_check: (bool,), _date_check: (date,)}
"""A column whose values are all of these exact types (or None) passes its check."""
_DOUBTFUL_TEXT = re.compile(f"[{REPLACEMENT}{UNSTORABLE.pattern[1:-1]}]")


def _column_fits(check: Check, values: list[Any]) -> bool:
    """Whether every value of a column passes ``check``, judged for the whole column at
    once where that is cheap (a few C-level passes instead of a call per value). False
    means only "not known": the values are then checked one by one."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if check in _FITS:
        return kinds <= set(_FITS[check])
    if check is _time_check:
        return kinds <= {datetime} and all(
            type(zone) is timezone for zone in {value.tzinfo for value in values if value}
        )
    if isinstance(check, _NumberCheck) and kinds <= {int, float, Decimal}:
        numbers = [value for value in values if value is not None]
        try:  # a float too large for a float, or not finite, is left to the check
            finite = all(map(math.isfinite, numbers))
        except OverflowError:
            return False
        bound = check.bound
        return finite and (bound is None or max(map(abs, numbers), default=0) < bound)
    if not isinstance(check, _TextCheck) or not kinds <= {str}:
        return False
    texts = [value for value in values if value]
    return (
        max(map(len, texts), default=0) <= check.limit
        and _DOUBTFUL_TEXT.search("".join(texts)) is None
    )


def batch_findings(entity: str, rows: Sequence[Mapping[str, object]]) -> dict[int, list[str]]:
    """:func:`column_findings` of every row of a batch, by the row's index (rows with none
    left out): the same reasons in the same order, found column by column."""
    findings: dict[int, list[str]] = {}
    for name, check in column_checks(entity).items():
        values = [row.get(name) for row in rows]
        if _column_fits(check, values):
            continue
        for index, value in enumerate(values):
            if value is not None and (problem := check(value)) is not None:
                findings.setdefault(index, []).append(f"column({name}): {problem}")
    return findings


@dataclass
class Verdict(Generic[Row]):
    """A validated batch: rows fit for the mirror, and rejected rows with their failures."""

    good: list[Row] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def suite_names(directory: Path = SUITES) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.json"))


def suite_columns(suite: Mapping[str, Any], known: Collection[str]) -> list[str]:
    """The columns of ``known`` a suite's expectations read: those they name, and those
    their row conditions name outside quoted text."""
    columns: dict[str, None] = {}
    for expectation in suite["expectations"]:
        kwargs = expectation["kwargs"]
        named = [kwargs[key] for key in ("column", "column_A", "column_B") if key in kwargs]
        condition = re.sub(r"\"[^\"]*\"|'[^']*'", "", kwargs.get("row_condition") or "")
        named += re.findall(r"[A-Za-z_]\w*", condition)
        columns.update(dict.fromkeys(name for name in named if name in known))
    return list(columns)


def _label(config: Any) -> str:
    kwargs = config.kwargs
    columns = [kwargs[key] for key in ("column", "column_A", "column_B") if key in kwargs]
    return f"{config.type}({', '.join(columns)})"


class Validator:
    """Holds one ephemeral Great Expectations context with every suite loaded from files.

    Great Expectations is imported (seconds) when a batch first needs a suite, not before:
    a sync that reads nothing new never loads it.
    """

    def __init__(self, directory: Path = SUITES) -> None:
        self.directory = directory

    @cached_property
    def _suite_names(self) -> set[str]:
        return set(suite_names(self.directory))

    @cached_property
    def _context(self) -> Any:
        # Analytics would try the network; the context is ephemeral and silent.
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GE fingerprints every in-memory batch under 1 GB (MD5 over pandas' hash of each
        # row) for batch markers these throwaway batches never use: a quarter of the time
        # a 100,000-row batch takes to validate. A threshold of 0 skips it.
        pandas_execution_engine.HASH_THRESHOLD = 0
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        return context

    @cached_property
    def _batches(self) -> Any:
        source = self._context.data_sources.add_pandas("canonical")
        return source.add_dataframe_asset("batch").add_batch_definition_whole_dataframe("whole")

    @cached_property
    def _suites(self) -> dict[str, Any]:
        import great_expectations as gx

        suites = {}
        for name in suite_names(self.directory):
            data = json.loads((self.directory / f"{name}.json").read_text(encoding="utf-8"))
            suites[name] = self._context.suites.add(gx.ExpectationSuite(**data))
        return suites

    @cached_property
    def _suite_columns(self) -> dict[str, list[str] | None]:
        """Each suite's columns: the frame it validates holds only these (building and
        filtering a frame of every column cost a third more)."""
        columns: dict[str, list[str] | None] = {}
        for name in suite_names(self.directory):
            data = json.loads((self.directory / f"{name}.json").read_text(encoding="utf-8"))
            model = MIRROR.get(name)  # no mirror table: the frame keeps every column
            known = None if model is None else [c.name for c in supplied_columns(model)]
            columns[name] = None if known is None else suite_columns(data, known)
        return columns

    def warm(self) -> None:
        """Build the context and load the suites now rather than on the first batch."""
        _ = (self._suites, self._batches)

    def validate(
        self, entity: str, rows: Sequence[Row], now: datetime | None = None
    ) -> Verdict[Row]:
        """Split ``rows`` into good and rejected: first the mirror table's column checks,
        then the entity's suite (all good if it has none) on the rows that passed them."""
        verdict: Verdict[Row] = Verdict()
        checked = []
        found = batch_findings(entity, rows)
        for index, row in enumerate(rows):
            if index in found:
                verdict.rejected.append(
                    Rejected(str(row.get("source")), _text_id(row), row, found[index])
                )
            else:
                checked.append(row)
        if not checked or entity not in self._suite_names:  # no need to import GX
            verdict.good = checked
            return verdict
        suited = self._validate_suite(
            self._suites[entity], self._suite_columns[entity], checked, now
        )
        verdict.good = suited.good
        verdict.rejected += suited.rejected
        return verdict

    def _validate_suite(
        self, suite: Any, columns: list[str] | None, rows: Sequence[Row], now: datetime | None
    ) -> Verdict[Row]:
        import pandas as pd

        frame = pd.DataFrame.from_records(list(rows), columns=columns)
        batch = self._batches.get_batch(batch_parameters={"dataframe": frame})
        values = parameters(now)
        try:
            # Pass or fail first: the failing rows' indexes (COMPLETE) cost a third more
            # for every batch, and almost every batch passes; a failing one runs again.
            result = batch.validate(
                suite,
                result_format={"result_format": "BOOLEAN_ONLY"},
                expectation_parameters=values,
            )
            if not result.success:
                result = batch.validate(
                    suite,
                    result_format={"result_format": "COMPLETE"},
                    expectation_parameters=values,
                )
        finally:
            # GE's engine keeps the last batch's frame until another replaces it: it would
            # stay in memory while the sync reads and loads the next batch.
            manager = batch.data.execution_engine.batch_manager
            manager.batch_data_cache.clear()
            manager.reset_batch_cache()
        failures: dict[int, list[str]] = {}
        for outcome in result.results:
            if outcome.success:
                continue
            indexes = outcome.result.get("unexpected_index_list")
            if indexes is None:
                # A dataset-level failure (or an expectation that broke) names no rows:
                # hold the whole batch back rather than mirror rows that were not checked.
                detail = (
                    outcome.exception_info.get("exception_message")
                    if outcome.exception_info
                    else None
                )
                label = _label(outcome.expectation_config) + (f": {detail}" if detail else "")
                indexes = range(len(rows))
            else:
                label = _label(outcome.expectation_config)
            for index in indexes:
                failures.setdefault(int(index), []).append(label)
        verdict: Verdict[Row] = Verdict()
        for index, row in enumerate(rows):
            if index in failures:
                verdict.rejected.append(
                    Rejected(str(row.get("source")), _text_id(row), row, failures[index])
                )
            else:
                verdict.good.append(row)
        return verdict


def _text_id(row: Mapping[str, object]) -> str | None:
    """The row's id as the quarantine keeps it (text of at most 64 characters)."""
    value = row.get("source_id")
    return None if value is None else str(value)[:64]
