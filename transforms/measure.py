"""Measuring: key-result values from the mirror, written to the store with their lineage.

A measurement row is written when a key result's value or status differs from its latest
measurement; an unchanged key result only gets ``checked_at`` moved, so a sync every few
minutes does not bloat the time series and every row marks a real change. Every pass, changed
or not, also keeps the day's last confirmed value (``DailyValue``): forecasts fit on those.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from okr_targets.config import KeyResultSpec, ObjectiveSpec, OkrConfig
from okr_targets.lineage import latest_measurement, lineage_select
from okr_targets.models import (
    MIRROR,
    Baseline,
    DailyValue,
    FxRate,
    KeyResult,
    Measurement,
    MeasurementRecord,
    Objective,
    Organisation,
    QuarantinedRow,
    SyncRun,
)
from okr_targets.periods import Period
from okr_targets.scoring import final_score, score
from okr_targets.store import upsert_records
from transforms.catalog import MetricCatalog
from transforms.dependencies import key_result_entities, key_result_needs
from transforms.held import held_back_for
from transforms.lineage import write_lineage
from transforms.metric import Comparison, MetricError, MetricResult
from transforms.metrics.change import PCT_CHANGE, ChangeParams
from transforms.money import CONFIG_SOURCE
from transforms.sql import shared_results


def save_okrs(
    session: Session, config: OkrConfig, now: datetime, catalog: MetricCatalog | None = None
) -> None:
    """Insert or update every objective and key result from the OKR file, and retire the
    ones no longer in it (their history stays; live views show only the file's).

    With the ``catalog``, each key result also keeps the entities its metric reads.
    """
    save_organisation(session, config, now)
    for objective in _parents_first(config):
        row = session.get(Objective, objective.id) or Objective(id=objective.id)
        row.title, row.owner = objective.title, objective.owner or ""
        row.period, row.parent_id, row.updated_at = objective.period or "", objective.parent, now
        row.weight, row.retired_at = objective.weight, None
        session.add(row)
        session.flush()
    for objective, spec, _where in config.key_results():
        owner, period = config.resolved(objective, spec)
        definition: dict[str, Any] = {
            "objective_id": objective.id,
            "title": spec.title,
            "owner": owner,
            "period": period,
            "metric": spec.metric or "",
            "params": dict(spec.params),
            "baseline": spec.baseline,
            "target": spec.target if spec.target is not None else spec.baseline,
            "unit": spec.unit or "",
            "at_risk_gap": config.spec.status.at_risk_gap,
            "off_track_gap": config.spec.status.off_track_gap,
            "kind": spec.resolved_kind,
            "weight": spec.weight,
            "calendar": config.calendar.model_dump(mode="json"),
            "freshness": config.freshness(),
            "retired_at": None,
        }
        target = definition["target"]
        definition["direction"] = spec.direction or (
            "increase" if target >= spec.baseline else "decrease"
        )
        if catalog is not None:
            definition["reads"] = reads(catalog, spec)
        kr = session.get(KeyResult, spec.id)
        if kr is not None and all(getattr(kr, k) == v for k, v in definition.items()):
            continue
        kr = kr or KeyResult(id=spec.id)
        for name, value in definition.items():
            setattr(kr, name, value)
        kr.updated_at = now  # only on a change: a measurement older than it is no reuse
        session.add(kr)
    session.flush()
    in_file = {spec.id for _objective, spec, _where in config.key_results()}
    for model, ids in ((KeyResult, in_file), (Objective, {o.id for o in config.spec.objectives})):
        session.execute(
            update(model)
            .where(model.id.not_in(ids), model.retired_at.is_(None))
            .values(retired_at=now)
        )


def save_organisation(session: Session, config: OkrConfig, now: datetime) -> None:
    """The file's company name and people map (e-mails lower-cased), touched only on a change."""
    people = {email.lower(): p.model_dump(mode="json") for email, p in config.spec.people.items()}
    row = session.get(Organisation, 1) or Organisation(id=1)
    if (row.company, row.people) != (config.spec.company, people):
        row.company, row.people, row.updated_at = config.spec.company, people, now
        session.add(row)


def reads(catalog: MetricCatalog, spec: KeyResultSpec) -> list[str] | None:
    """The entities a key result reads (:mod:`transforms.dependencies`).

    ``[]`` for a milestone set by hand; None when the metric does not say (a custom metric
    without ``needs``) or is unknown: then any stream's trouble may touch it.
    """
    entities = key_result_entities(catalog, spec)
    return None if entities is None else sorted(entities)


def save_money(session: Session, config: OkrConfig, run_id: str, now: datetime) -> None:
    """Mirror the OKR file's exchange rates as source ``config`` (they win over sources')."""
    money = config.spec.money
    rates = dict(money.rates)
    if money.currency is not None:
        rates[money.currency] = 1.0
    rows = [
        {
            "source": CONFIG_SOURCE,
            "source_id": currency,
            "source_modified_at": now,
            "deleted_at": None,
            "run_id": run_id,
            "currency": currency,
            "rate": Decimal(str(rate)),
            "is_corporate": currency == money.currency,
            "valid_from": None,
            "valid_to": None,
        }
        for currency, rate in rates.items()
    ]
    saved = {
        rate.source_id: (rate.rate, rate.is_corporate)
        for rate in session.scalars(
            select(FxRate).where(FxRate.source == CONFIG_SOURCE, FxRate.deleted_at.is_(None))
        )
    }
    # An unchanged rate keeps the time it was first read: a run with no change writes nothing.
    changed = [r for r in rows if saved.get(str(r["source_id"])) != (r["rate"], r["is_corporate"])]
    upsert_records(session, FxRate, changed, replace=True)
    session.execute(
        update(FxRate)
        .where(
            FxRate.source == CONFIG_SOURCE,
            FxRate.source_id.not_in(list(rates)),
            FxRate.deleted_at.is_(None),
        )
        .values(deleted_at=now, run_id=run_id)
    )


def _parents_first(config: OkrConfig) -> list[ObjectiveSpec]:
    ordered: list[ObjectiveSpec] = []
    pending = list(config.spec.objectives)
    while pending:
        placed = {o.id for o in ordered}
        ready = [o for o in pending if o.parent is None or o.parent in placed]
        ordered += ready
        pending = [o for o in pending if o not in ready]
    return ordered


@dataclass
class KeyResultOutcome:
    """What one sync did to one key result, for the run report."""

    key_result_id: str
    value: float | None
    unit: str
    status: str
    progress: float | None
    changed: bool
    records: int
    error: str | None = None
    previous_value: float | None = None  # the latest measurement before this run's
    previous_status: str | None = None  # None: never measured before
    blocked: bool = False  # a source lacks a field the metric needs: a finding, not a failure
    reused: bool = False  # its inputs had not changed: the latest value, scored again
    current: bool = False  # the latest measurement is this pass's result whole (lineage too)
    expected_progress: float | None = None  # where progress should be by now
    baseline_period: str | None = None  # a change (pct_change) is measured against it


@dataclass(frozen=True)
class _Pass:
    """One measuring pass: the run, its clock and code, and how to treat baselines."""

    catalog: MetricCatalog
    run_id: str
    now: datetime
    code_version: str
    data_cutoff: datetime | None
    refreeze_baselines: bool


def _compute(session: Session, spec: KeyResultSpec, period: Period, run: _Pass) -> MetricResult:
    """The key result's value: a milestone set by hand, else its metric, with its baseline
    frozen the first time it is computed over a closed period."""
    if spec.metric is None:
        done = 1.0 if spec.done else 0.0
        return MetricResult(done, "", None, {"done": bool(spec.done), "set_in": "the OKR file"})
    metric = run.catalog.find(spec.metric)
    result = metric.run(session, period, spec.params)
    if spec.metric == PCT_CHANGE:
        result = freeze_baseline(
            session, result, run.run_id, run.now, refreeze=run.refreeze_baselines
        )
        compared = ChangeParams.model_validate(spec.params)
        metric, params = run.catalog.find(compared.metric), compared.inner_params
    else:
        params = dict(spec.params)
    held = held_back_for(session, metric, metric.params.model_validate(params), period)
    if held is not None:
        result.details = {**result.details, "held_back": [h.details() for h in held]}
    return result


def _query(comparison: Comparison) -> dict[str, Any]:
    """What a frozen baseline answers, as its row keeps it."""
    return {
        "metric": comparison.metric,
        "params": comparison.params,
        "period": comparison.baseline_period.label,
        "calendar": comparison.calendar.model_dump(),
    }


def baseline_key(comparison: Comparison) -> str:
    """The same question asked again gets the same key: metric, parameters, period, calendar."""
    question = {
        "metric": comparison.metric,
        "params": comparison.params,
        "baseline_period": comparison.baseline_period.label,
        "calendar": comparison.calendar.model_dump(),
    }
    text = json.dumps(question, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def freeze_baseline(
    session: Session, result: MetricResult, run_id: str, now: datetime, *, refreeze: bool = False
) -> MetricResult:
    """Use the frozen baseline of a closed baseline period; freeze it on first sight.

    The value is recomputed from the frozen baseline, never from the baseline period's
    data as it is now; if that data has changed since, ``details`` says so beside it
    (``baseline_now``), for a person to decide, never silently. A full refresh (an
    operator re-reading a restored or re-seeded source) re-freezes it, and says so
    (``baseline_refrozen_from``) in the measurement and the logs.
    """
    compared = result.comparison
    if compared is None or now < compared.baseline_period.end_at:
        return result  # the baseline period is still open: nothing final to freeze yet
    details = dict(result.details)
    key = baseline_key(compared)
    details["baseline_key"] = key
    frozen = session.get(Baseline, key)
    if frozen is None:
        frozen = Baseline(
            key=key,
            metric=compared.metric,
            params=compared.params,
            period=compared.baseline_period.label,
            query=_query(compared),
            value=compared.baseline,
            record_count=compared.baseline_records,
            computed_at=now,
            run_id=run_id,
        )
        session.add(frozen)
        session.flush()
    elif frozen.value != compared.baseline and refreeze:
        details["baseline_refrozen_from"] = frozen.value
        logging.getLogger("okr_sync").warning(
            "baseline %s of %s re-frozen by the full refresh: %s → %s",
            frozen.period,
            frozen.metric,
            frozen.value,
            compared.baseline,
        )
        frozen.value = compared.baseline
        frozen.record_count = compared.baseline_records
        frozen.computed_at, frozen.run_id = now, run_id
    elif frozen.value != compared.baseline:
        details["baseline_now"] = compared.baseline
        details["baseline"] = frozen.value
    details["baseline_frozen_at"] = frozen.computed_at.isoformat()
    # The frozen baseline's records are counted in it; today's copies of them did not make
    # the number: the lineage is the current period's records alone.
    current = compared.current
    lineage = (current.records, details, current.record_count, compared)
    if current.value is None or not frozen.value:
        return MetricResult(None, result.unit, *lineage)
    value = 100.0 * (current.value - frozen.value) / abs(frozen.value)
    return MetricResult(value, result.unit, *lineage)


def measure_key_results(
    session: Session,
    config: OkrConfig,
    catalog: MetricCatalog,
    run_id: str,
    now: datetime,
    code_version: str,
    data_cutoff: datetime | None = None,
    refreeze_baselines: bool = False,
    gaps: Mapping[str, tuple[str, ...]] | None = None,
    changed: Collection[str] | None = None,
) -> list[KeyResultOutcome]:
    """Compute every key result over the mirror and write the ones that changed.

    ``catalog`` holds the metrics the OKR file may name (``transforms.catalog.load``).
    ``data_cutoff`` is when the sync read its sources: later changes are not in the values.
    A closed period's value is final once measured after the close; if it changes after
    that (a deal marked won late, a ticket reopened) the new measurement restates the old
    one (``restates_id``), so the history keeps both and ``explain`` shows why.
    ``gaps`` are the canonical fields (``entity.field``) some source lacks, each with why:
    a key result whose metric needs one gets that finding as its error, not a number that
    would look valid but is not.
    ``changed`` names every entity this run changed, for a targeted pass (with what
    :func:`entities_written` finds in the store): a key result that reads none and whose latest
    measurement is provably what computing it again would give (:class:`_Reuse`) keeps
    that value and its lineage, scored again as of ``now``. None: compute every one.
    """
    run = _Pass(catalog, run_id, now, code_version, data_cutoff, refreeze_baselines)
    reuse = None if changed is None else _Reuse.load(session, config, run, changed)
    outcomes = []
    with shared_results(session):
        for objective, spec, _where in config.key_results():
            if spec.target is None or (spec.metric is None and spec.done is None):
                continue
            _owner, period_label = config.resolved(objective, spec)
            period = config.calendar.period(period_label)
            lacking = _lacking(catalog, spec, gaps or {})
            kept = None if reuse is None or lacking else reuse.kept(session, spec)
            try:
                if lacking:
                    raise MetricError(lacking)
                result = _compute(session, spec, period, run) if kept is None else _reused(kept)
            except MetricError as exc:
                # Stored as the key result's latest measurement, so every view shows the
                # error where its number would be, never an old value or a silent 0.
                failed = MetricResult(None, spec.unit or "", None, {"error": str(exc)})
                outcome = _record(session, config, spec, spec.target, period, failed, run)
                error = replace(outcome, status="error", error=str(exc), blocked=bool(lacking))
                outcomes.append(error)
                continue
            reused = kept is not None
            outcomes.append(
                _record(session, config, spec, spec.target, period, result, run, reused=reused)
            )
    return outcomes


@dataclass(frozen=True)
class _Reuse:
    """What a targeted pass knows to tell whether a key result's latest measurement is what
    computing it now would give.

    It is when all of these hold, each read from the store:

    - the key result reads declared entities (:mod:`transforms.dependencies`), none of them
      changed by this run, and its definition (metric, parameters, period, …) was not
      edited for this run;
    - the run before this one began today (the calendar's day: periods close, scores
      settle and baselines freeze on day boundaries), with this code, and left the key
      result current: after it, the latest measurement was that run's result whole,
      details and lineage (each run records which it left current). A run that failed or
      stopped before measuring records none (the rows it wrote were never measured);
    - the latest measurement is not an error.
    """

    changed: frozenset[str]
    run: _Pass
    began: datetime  # when this run began: a definition saved since was edited for it
    current: frozenset[str]  # the key results the run before this one left current

    @classmethod
    def load(
        cls, session: Session, config: OkrConfig, run: _Pass, changed: Collection[str]
    ) -> _Reuse:
        this = session.get(SyncRun, run.run_id)
        before = session.scalars(
            select(SyncRun)
            .where(SyncRun.id != run.run_id)
            .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
            .limit(1)
        ).first()
        today = config.calendar.local_date(run.now)
        if (
            this is None
            or before is None
            or config.calendar.local_date(before.started_at) != today
            or before.code_version != run.code_version
        ):
            return cls(frozenset(changed), run, run.now, frozenset())
        current = ((before.details or {}).get("measuring") or {}).get("current") or ()
        return cls(frozenset(changed), run, this.started_at, frozenset(current))

    def kept(self, session: Session, spec: KeyResultSpec) -> Measurement | None:
        """The latest measurement, when it may stand for computing the key result now."""
        entities = key_result_entities(self.run.catalog, spec)
        if spec.metric is None or entities is None or spec.id not in self.current:
            return None
        if not entities.isdisjoint(self.changed):
            return None
        key_result = session.get(KeyResult, spec.id)
        if key_result is None or key_result.updated_at >= self.began:  # edited for this run
            return None
        latest = latest_measurement(session, spec.id)
        if latest is None or latest.metric != spec.metric:
            return None
        return None if (latest.details or {}).get("error") is not None else latest


def entities_written(session: Session, run_id: str, known: Collection[str] = ()) -> set[str]:
    """The entities of which the run wrote a mirror row (a record, a tombstone, a rate) or
    held one back: their key results' values may have changed. ``known`` are not looked
    for again (each look reads the table's run ids: no index has them)."""
    written = {
        entity
        for entity, model in MIRROR.items()
        if entity not in known and session.scalar(select(exists().where(model.run_id == run_id)))
    }
    held = select(QuarantinedRow.entity).where(QuarantinedRow.run_id == run_id).distinct()
    return set(known) | written | set(session.scalars(held))


def _reused(latest: Measurement) -> MetricResult:
    """The latest measurement as a metric result: its value, details and lineage rows."""
    records = lineage_select(latest.id)
    details = dict(latest.details or {})
    return MetricResult(latest.value, latest.unit, records, details, latest.record_count)


def _lacking(
    catalog: MetricCatalog, spec: KeyResultSpec, gaps: Mapping[str, tuple[str, ...]]
) -> str | None:
    """Each field the key result needs that a source lacks, and why; None: it lacks none."""
    needs = key_result_needs(catalog, spec) if gaps else frozenset()
    missing = [f"needs {need}: {'; '.join(gaps[need])}" for need in sorted(needs) if need in gaps]
    return "; ".join(missing) or None


def _trust(details: dict[str, Any] | None) -> tuple[Any, Any]:
    """What says whether a value can be trusted: held-back records, an error. A change in
    it is a change of the key result, as a new value is."""
    details = details or {}
    return details.get("held_back"), details.get("error")


def _keep_daily_value(
    session: Session, key_result: KeyResult, config: OkrConfig, value: float | None, run: _Pass
) -> None:
    """This pass's value as the day's point (a later pass the same day replaces it)."""
    day = config.calendar.local_date(run.now)
    point = session.get(DailyValue, (key_result.id, day))
    if point is None:
        point = DailyValue(key_result_id=key_result.id, day=day)
        session.add(point)
    point.value, point.checked_at = value, run.now
    point.data_cutoff, point.run_id = run.data_cutoff, run.run_id


def _restated(
    previous: Measurement | None, period: Period, value: float | None, closed: bool
) -> int | None:
    """The measurement a new value restates: a closed period's, taken after its close."""
    if previous is None or not closed:
        return None
    final = previous.measured_at >= period.end_at and previous.value != value
    return previous.id if final else None


def _record(
    session: Session,
    config: OkrConfig,
    spec: KeyResultSpec,
    target: float,
    period: Period,
    result: MetricResult,
    run: _Pass,
    *,
    reused: bool = False,
) -> KeyResultOutcome:
    """Score the key result's new value and write a measurement if it changed.

    ``reused``: the result is the latest measurement's own (its inputs did not change);
    a new status (time passing) copies its lineage into the new measurement.
    """
    kind, now = spec.resolved_kind, run.now
    scored = score(result.value, spec.baseline, target, period, now, config.spec.status, kind=kind)
    previous = latest_measurement(session, spec.id)
    changed = (
        previous is None
        or previous.value != result.value
        or previous.status != scored.status
        or _trust(previous.details) != _trust(result.details)
    )
    key_result = session.get(KeyResult, spec.id)
    assert key_result is not None, "save_okrs runs first"
    key_result.checked_at = now
    closed = now >= period.end_at
    if closed and result.value is not None and (key_result.final_score is None or changed):
        key_result.final_score = final_score(kind, result.value, spec.baseline, target)
        key_result.scored_at = now
    _keep_daily_value(session, key_result, config, result.value, run)
    current = changed or reused or _same(session, previous, result)
    if changed:
        measurement = Measurement(
            key_result_id=spec.id,
            run_id=run.run_id,
            measured_at=now,
            value=result.value,
            unit=spec.unit or result.unit,
            progress=scored.progress,
            progress_raw=scored.progress_raw,
            expected_progress=scored.expected,
            status=scored.status,
            metric=spec.metric or "milestone",
            params=dict(spec.params),
            details=result.details,
            record_count=result.record_count,
            code_version=run.code_version,
            data_cutoff=run.data_cutoff,
            restates_id=_restated(previous, period, result.value, closed),
        )
        session.add(measurement)
        session.flush()
        if result.records is not None:  # in the database: a million records stay there
            write_lineage(session, measurement.id, result.records)
    return KeyResultOutcome(
        spec.id,
        result.value,
        spec.unit or result.unit,
        scored.status,
        scored.progress,
        changed,
        result.record_count,
        previous_value=previous.value if previous is not None else None,
        previous_status=previous.status if previous is not None else None,
        reused=reused,
        current=current,
        expected_progress=scored.expected,
        baseline_period=(result.details or {}).get("baseline_period"),
    )


def _same(session: Session, previous: Measurement | None, result: MetricResult) -> bool:
    """Whether the latest measurement is this result whole: details, count and lineage
    (one written when only those differ would not mark a change of the number).

    The lineage is compared by counts: the stored records, and the computed ones that
    are among them (a join on the lineage's key), are both ``record_count``. A metric's
    records are each once (the lineage's primary key could not hold them otherwise) and
    ``record_count`` is how many, so this is set equality, read in one join instead of
    two full EXCEPTs (issue 25). A join, not NOT EXISTS: PostgreSQL plans EXISTS for its
    first row, a nested loop over every record.
    """
    if previous is None or previous.details != result.details:
        return False
    if previous.record_count != result.record_count:
        return False
    stored = lineage_select(previous.id)
    if result.records is None:
        return not session.scalar(select(exists(stored)))
    kept = MeasurementRecord
    stored_rows = session.scalar(
        select(func.count()).select_from(kept).where(kept.measurement_id == previous.id)
    )
    if stored_rows != result.record_count:
        return False
    fresh = result.records.subquery()
    shared = select(func.count()).select_from(
        fresh.join(
            kept,
            (kept.measurement_id == previous.id)
            & (kept.entity == fresh.c.entity)
            & (kept.source == fresh.c.source)
            & (kept.source_id == fresh.c.source_id),
        )
    )
    return session.scalar(shared) == result.record_count
