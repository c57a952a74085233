"""OKRs as code: the YAML file of objectives and key results, its validation and SMART lint.

Errors name the file, the line and the fix, because the person reading them edits YAML,
not Python. Loading checks structure (types, unknown keys, sources, ids, parents,
periods); ``lint`` checks that every key result is SMART enough to sync. Metrics are not
this module's: the file's own ``metrics:`` are kept here as plain data, and metric names
and parameters are checked by ``transforms.catalog.load``, which callers use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import Column, String

from connectors.base import StreamInfo, UnknownConnectorError, get_connector
from okr_targets.models import KeyResult, Rep
from okr_targets.periods import Calendar, Period
from okr_targets.scoring import Kind, StatusThresholds, check_target


def _valid_period(label: str) -> str:
    Period.parse(label)
    return label


def _stored_length(column: Column[str]) -> int:
    """How many characters the store's column holds: the file is refused before the store
    would refuse the sync (PostgreSQL) or keep it silently (SQLite)."""
    if not isinstance(column.type, String) or column.type.length is None:
        raise TypeError(f"{column} is not a bounded string column")
    return column.type.length


_columns = KeyResult.__table__.c
Slug = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=_stored_length(_columns.id))
]
PeriodLabel = Annotated[
    str, Field(max_length=_stored_length(_columns.period)), AfterValidator(_valid_period)
]
Owner = Annotated[str, Field(max_length=_stored_length(_columns.owner))]
Unit = Annotated[str, Field(max_length=_stored_length(_columns.unit))]
MetricName = Annotated[str, Field(max_length=_stored_length(_columns.metric))]
# A number written as a number: not `yes` (a YAML boolean), not text, never .inf or .nan.
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Weight = Annotated[Number, Field(gt=0)]
Duration = Annotated[timedelta, BeforeValidator(lambda value: _duration(value))]


class ConfigError(Exception):
    """The OKR file is invalid; the message says where and how to fix it."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyResultSpec(_Spec):
    id: Slug
    title: str
    owner: Owner | None = None
    period: PeriodLabel | None = None
    kind: Kind | None = Field(default=None, description="default: from the metric and target")
    metric: MetricName | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    baseline: Number = 0.0
    target: Number | None = None
    direction: Literal["increase", "decrease"] | None = None
    done: bool | None = Field(default=None, description="a milestone's state, set by hand")
    unit: Unit | None = None
    weight: Weight = Field(default=1.0, description="in its objective's roll-up")

    @property
    def resolved_kind(self) -> Kind:
        """The kind written, else percent_change for pct_change, else from the direction."""
        if self.kind is not None:
            return self.kind
        if self.metric == "pct_change":
            return "percent_change"
        downward = self.direction == "decrease" or (
            self.direction is None and self.target is not None and self.target < self.baseline
        )
        return "decrease_to" if downward else "increase_to"

    @model_validator(mode="after")
    def _milestones_are_done_or_not(self) -> KeyResultSpec:
        if self.kind == "milestone":
            if self.metric is None and self.done is None:
                raise ValueError("a milestone needs `done: true|false` or a `metric:`")
            if self.target is None:
                self.target = 1.0
        elif self.done is not None:
            raise ValueError("`done:` is for `kind: milestone` only")
        return self


class ObjectiveSpec(_Spec):
    id: Slug
    title: str
    owner: Owner | None = None
    period: PeriodLabel | None = None
    parent: Slug | None = None
    weight: Weight = Field(default=1.0, description="in its parent's roll-up")
    key_results: list[KeyResultSpec] = Field(default_factory=list)


Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class CustomersSpec(_Spec):
    """Whose customers count, and how other systems' customers are matched to them."""

    primary: str | None = Field(default=None, description="default: the first customer source")
    match_by: Literal["domain", "external_id"] = "domain"


class MoneySpec(_Spec):
    """The reporting currency and, optionally, rates that override the sources' own."""

    currency: Currency | None = None
    rates: dict[Currency, Number] = Field(
        default_factory=dict, description="units of each currency per one `currency`"
    )

    @model_validator(mode="after")
    def _rates_need_a_base(self) -> MoneySpec:
        if self.rates and self.currency is None:
            raise ValueError("rates need `currency:`, the currency they are quoted against")
        if any(rate <= 0 for rate in self.rates.values()):
            raise ValueError("rates must be positive")
        return self


class CustomMetricSpec(_Spec):
    """A data team's metric: one read-only SELECT over the mirror, or a Python function."""

    description: str = ""
    unit: Unit = ""
    sql: str | None = Field(default=None, description="one SELECT returning one number")
    python: str | None = Field(default=None, description="package.module:function")
    params: dict[str, Any] = Field(
        default_factory=dict, description="parameters key results may pass, with defaults"
    )
    records: str | None = Field(
        default=None, description="a SELECT of (source, source_id) behind the number"
    )
    entity: str | None = Field(default=None, description="the mirror entity `records` lists")

    @model_validator(mode="after")
    def _sql_or_python(self) -> CustomMetricSpec:
        if (self.sql is None) == (self.python is None):
            raise ValueError("a metric needs exactly one of `sql:` or `python:`")
        if self.records is not None and self.sql is None:
            raise ValueError("`records:` is for `sql:` metrics")
        return self


def _email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise ValueError(f"{value!r} is not an e-mail address (the owner's, as in `owner:`)")
    return value


Email = Annotated[str, Field(max_length=_stored_length(_columns.owner)), AfterValidator(_email)]
TeamName = Annotated[str, Field(min_length=1, max_length=_stored_length(Rep.__table__.c.team))]


class PersonSpec(_Spec):
    """How an owner is shown: the name (and team) for an e-mail, over the CRM's reps."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    team: TeamName | None = None


def _name_only(value: Any) -> Any:
    """``a@x: Alice Adams`` is short for ``a@x: {name: Alice Adams}``."""
    return {"name": value} if isinstance(value, str) else value


def _every_salesforce_entity() -> dict[str, list[str] | None]:
    return {"salesforce": None}


class OkrFile(_Spec):
    company: str
    sources: dict[str, list[str] | None] = Field(
        default_factory=_every_salesforce_entity,
        description="source -> the entities it provides (None: every entity it offers)",
        min_length=1,
    )
    customers: CustomersSpec = Field(default_factory=CustomersSpec)
    money: MoneySpec = Field(default_factory=MoneySpec)
    status: StatusThresholds = Field(default_factory=StatusThresholds)
    calendar: Calendar = Field(default_factory=Calendar)  # time zone and fiscal-year start
    freshness: dict[str, Duration] = Field(
        default_factory=dict,
        description="source (or `default`) -> how old its data may be before its key "
        "results show stale, e.g. 90m, 2h, 1d (default 1d)",
    )
    metrics: dict[Slug, CustomMetricSpec] = Field(
        default_factory=dict, description="custom metrics, by name, for key results to use"
    )
    people: dict[Email, Annotated[PersonSpec, BeforeValidator(_name_only)]] = Field(
        default_factory=dict,
        description="owner e-mail -> name and optional team, shown instead of the e-mail; "
        "wins over the CRM's reps",
    )
    objectives: list[ObjectiveSpec] = Field(min_length=1)

    @field_validator("sources", mode="before")
    @classmethod
    def _list_means_everything(cls, value: Any) -> Any:
        return dict.fromkeys(value) if isinstance(value, list) else value


def _duration(value: Any) -> timedelta:
    """``90m``, ``2h``, ``1d`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a duration such as 90m, 2h or 1d")
        seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return timedelta(seconds=seconds)


DEFAULT_FRESHNESS = timedelta(days=1)


@dataclass
class OkrConfig:
    """A loaded OKR file plus where each of its parts was written (for messages)."""

    path: Path
    spec: OkrFile
    lines: dict[tuple[str | int, ...], int]

    def where(self, *location: str | int) -> str:
        return f"{self.path}:{_line_for(self.lines, location)}"

    @property
    def calendar(self) -> Calendar:
        """The file's ``calendar:`` (default UTC, January); read its periods with it."""
        return self.spec.calendar

    def freshness(self) -> dict[str, float]:
        """Seconds each source's data may age before its key results show stale."""
        limits = {"default": DEFAULT_FRESHNESS.total_seconds()}
        limits |= {name: limit.total_seconds() for name, limit in self.spec.freshness.items()}
        return limits

    def key_results(self) -> Iterator[tuple[ObjectiveSpec, KeyResultSpec, tuple[str | int, ...]]]:
        for o_index, objective in enumerate(self.spec.objectives):
            for k_index, key_result in enumerate(objective.key_results):
                yield objective, key_result, ("objectives", o_index, "key_results", k_index)

    def streams(self) -> list[tuple[str, StreamInfo]]:
        """Every (source, stream) to sync, in file order, as the ``sources:`` section says."""
        chosen = []
        for source, entities in self.spec.sources.items():
            for stream in get_connector(source).streams:
                if entities is None or stream.entity in entities:
                    chosen.append((source, stream))
        return chosen

    def primary_customer_source(self) -> str | None:
        if self.spec.customers.primary is not None:
            return self.spec.customers.primary
        for source, stream in self.streams():
            if stream.entity == "customer":
                return source
        return None

    def resolved(self, objective: ObjectiveSpec, key_result: KeyResultSpec) -> tuple[str, str]:
        """The key result's owner and period, inherited from its objective when not set."""
        return (
            key_result.owner or objective.owner or "",
            key_result.period or objective.period or "",
        )


def _line_index(
    node: yaml.Node, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], int]]:
    """Every path in the document with the line it starts on (a key's line for mappings)."""
    yield path, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            yield child, key.start_mark.line + 1
            yield from ((p, line) for p, line in _line_index(value, child) if p != child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _line_index(item, (*path, index))


def _line_for(lines: dict[tuple[str | int, ...], int], location: tuple[str | int, ...]) -> int:
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return 1


_FIXES = {
    "missing": "add the field",
    "extra_forbidden": "remove it or check its spelling",
    "float_parsing": "write a plain number, such as 10 or -2.5",
    "float_type": "write a plain number, such as 10 or -2.5",
    "string_type": "write text, in quotes if it looks like a number",
    "list_type": "write a list (lines starting with '- ')",
    "dict_type": "write a mapping (key: value lines)",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use lower-case letters, digits, '-' and '_'",
    "too_short": "add at least one entry",
    "string_too_long": "shorten it: the store holds no more",
    "finite_number": "write a finite number (not .inf or .nan)",
}


def fix_for(error_type: str) -> str:
    """How to fix a pydantic error of that type, in YAML terms."""
    return _FIXES.get(error_type, "correct the value")


def dotted(location: tuple[str | int, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


MAX_FILE_BYTES = 1 << 20  # a thousand-objective file is about 100 KB
MAX_CASCADE_DEPTH = 32  # objectives below the top; real cascades have a handful


class _Refused(yaml.YAMLError):
    """What the OKR file may not contain, at the mark where it was found."""

    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


class _OkrLoader(yaml.SafeLoader):
    """SafeLoader without aliases: ``*name`` is refused as it is read, so a few lines of
    nested aliases (billion laughs) cannot grow into billions of nodes downstream."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                event.start_mark,
                f"YAML aliases such as `*{event.anchor}` are not accepted; "
                "fix: write the value out in full",
            )
        return super().compose_node(parent, index)

    def finite_float(self, node: yaml.ScalarNode) -> float:
        value = self.construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(
                node.start_mark,
                f"{node.value} is not a finite number; fix: write a plain number, such as 10",
            )
        return value


_OkrLoader.add_constructor("tag:yaml.org,2002:float", _OkrLoader.finite_float)


def _read_yaml(path: Path) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for lines) and its data; ConfigError for anything else."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the OKR file ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: the OKR file is larger than {MAX_FILE_BYTES} bytes; "
            "fix: split it or check that it is the right file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte {exc.start}: 0x{raw[exc.start]:02x}); "
            "fix: save the file as UTF-8"
        ) from None
    loader = _OkrLoader(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    except _Refused as exc:
        raise ConfigError(f"{path}:{exc.mark.line + 1}: {exc.message}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: YAML nested too deeply; fix: flatten the nested lists or mappings"
        ) from None
    finally:
        loader.dispose()


def _check_duplicate_keys(path: Path, root: yaml.Node) -> None:
    """A key written twice in one mapping: YAML keeps the last silently, dropping the first."""
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.MappingNode):
            first: dict[object, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if isinstance(key, yaml.ScalarNode) and key.value in first:
                    raise ConfigError(
                        f"{path}:{line}: `{key.value}` is already given at line "
                        f"{first[key.value]} in the same mapping; fix: merge the two or "
                        "remove one"
                    )
                if isinstance(key, yaml.ScalarNode):
                    first[key.value] = line
                pending.append(value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)


def load_okrs(path: str | Path) -> OkrConfig:
    """Read and validate an OKR file's structure; raises ConfigError with file:line and a
    fix. Its metrics are checked by ``transforms.catalog.load``."""
    path = Path(path)
    try:
        node, data = _read_yaml(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"{path}{line}: not valid YAML ({problem}); fix the indentation or quoting there"
        ) from None
    if node is None or not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping with `company:` and `objectives:`")
    _check_duplicate_keys(path, node)
    lines = dict(_line_index(node))
    try:
        spec = OkrFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = tuple(error["loc"])
        fix = fix_for(error["type"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        where = f"{path}:{_line_for(lines, location)}"
        raise ConfigError(
            f"{where}: {dotted(location)}: {error['msg']}; fix: {fix}{more}"
        ) from None
    config = OkrConfig(path, spec, lines)
    _check_references(config)
    _check_periods(config)
    return config


def _check_periods(config: OkrConfig) -> None:
    """Every period label, read in the file's calendar (what measuring will do)."""
    labelled: list[tuple[str | None, tuple[str | int, ...]]] = [
        (objective.period, ("objectives", index, "period"))
        for index, objective in enumerate(config.spec.objectives)
    ]
    labelled += [(kr.period, (*where, "period")) for _o, kr, where in config.key_results()]
    for label, location in labelled:
        if label is None:
            continue
        try:
            config.calendar.period(label)
        except ValueError as exc:
            raise ConfigError(
                f"{config.where(*location)}: {exc}; fix: correct the period"
            ) from None


def _check_sources(config: OkrConfig) -> None:
    for source, entities in config.spec.sources.items():
        try:
            offered = {stream.entity for stream in get_connector(source).streams}
        except UnknownConnectorError as exc:
            raise ConfigError(f"{config.where('sources', source)}: {exc}") from None
        for entity in entities or ():
            if entity not in offered:
                raise ConfigError(
                    f"{config.where('sources', source)}: {source} does not provide {entity!r}; "
                    f"fix: use some of {sorted(offered)}"
                )
    primary = config.spec.customers.primary
    if primary is not None and primary not in config.spec.sources:
        raise ConfigError(
            f"{config.where('customers', 'primary')}: {primary!r} is not one of the sources; "
            f"fix: use one of {sorted(config.spec.sources)}"
        )


def _check_people(config: OkrConfig) -> None:
    """E-mails match owners whatever their case, so two spellings of one would clash."""
    seen: dict[str, str] = {}
    for email in config.spec.people:
        if email.lower() in seen:
            raise ConfigError(
                f"{config.where('people', email)}: people: {email!r} is already given as "
                f"{seen[email.lower()]!r} (e-mails match whatever their case); "
                "fix: keep one of them"
            )
        seen[email.lower()] = email


def _check_references(config: OkrConfig) -> None:
    _check_sources(config)
    _check_people(config)
    seen: dict[str, str] = {}
    objectives = {objective.id for objective in config.spec.objectives}
    for index, objective in enumerate(config.spec.objectives):
        where = ("objectives", index)
        _unique(config, seen, objective.id, (*where, "id"))
        if objective.parent is not None and objective.parent not in objectives:
            raise ConfigError(
                f"{config.where(*where, 'parent')}: parent {objective.parent!r} is not an "
                f"objective in this file; fix: use one of {sorted(objectives - {objective.id})}"
            )
    _check_cycles(config)
    for _objective, key_result, kr_where in config.key_results():
        _unique(config, seen, key_result.id, (*kr_where, "id"))


def _unique(
    config: OkrConfig, seen: dict[str, str], ident: str, location: tuple[str | int, ...]
) -> None:
    if ident in seen:
        raise ConfigError(
            f"{config.where(*location)}: id {ident!r} is already used at {seen[ident]}; "
            "fix: give it a unique id"
        )
    seen[ident] = config.where(*location)


def _check_cycles(config: OkrConfig) -> None:
    """No cycles, and no cascade deeper than MAX_CASCADE_DEPTH (each walk stops there)."""
    parents = {objective.id: objective.parent for objective in config.spec.objectives}
    for index, objective in enumerate(config.spec.objectives):
        chain, current = [objective.id], objective.parent
        while current is not None:
            if current in chain:
                raise ConfigError(
                    f"{config.where('objectives', index, 'parent')}: objectives form a cycle "
                    f"({' -> '.join([*chain, current])}); fix: break the cycle"
                )
            if len(chain) > MAX_CASCADE_DEPTH:
                raise ConfigError(
                    f"{config.where('objectives', index, 'parent')}: objective "
                    f"{objective.id!r} is more than {MAX_CASCADE_DEPTH} levels below the top; "
                    "fix: keep the cascade shallower"
                )
            chain.append(current)
            current = parents.get(current)


@dataclass(frozen=True)
class LintFinding:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def lint(config: OkrConfig) -> list[LintFinding]:
    """SMART checks: metric, measurable target, period and owner; parents below the top."""
    findings: list[LintFinding] = []
    tops = [o for o in config.spec.objectives if o.parent is None]
    if len(tops) > 1:
        for index, objective in enumerate(config.spec.objectives):
            if objective.parent is None and objective is not tops[0]:
                findings.append(
                    LintFinding(
                        config.where("objectives", index),
                        f"objective {objective.id!r} has no parent; only the top objective "
                        f"({tops[0].id!r}) may stand alone: add `parent:`",
                    )
                )
    for index, objective in enumerate(config.spec.objectives):
        if not objective.key_results and not any(
            o.parent == objective.id for o in config.spec.objectives
        ):
            findings.append(
                LintFinding(
                    config.where("objectives", index),
                    f"objective {objective.id!r} has neither key results nor child objectives",
                )
            )
    for objective, key_result, where in config.key_results():
        findings += _key_result_findings(config, objective, key_result, where)
    return findings


def _key_result_findings(
    config: OkrConfig,
    objective: ObjectiveSpec,
    key_result: KeyResultSpec,
    where: tuple[str | int, ...],
) -> list[LintFinding]:
    """A key result's SMART gaps: no metric, no measurable target, no period or owner."""
    findings: list[LintFinding] = []
    owner, period = config.resolved(objective, key_result)
    label = f"key result {key_result.id!r}"
    kind = key_result.resolved_kind
    if key_result.metric is None and key_result.done is None:
        findings.append(
            LintFinding(config.where(*where), f"{label} is not bound to a metric: add `metric:`")
        )
    if key_result.target is None:
        findings.append(
            LintFinding(config.where(*where), f"{label} has no measurable target: add `target:`")
        )
    elif kind in ("increase_to", "decrease_to") and key_result.target == key_result.baseline:
        findings.append(
            LintFinding(
                config.where(*where, "target"), f"{label} has its target equal to its baseline"
            )
        )
    elif problem := check_target(kind, key_result.baseline, key_result.target):
        findings.append(LintFinding(config.where(*where, "target"), f"{label}: {problem}"))
    elif key_result.direction is not None and (
        (key_result.direction == "increase") != (key_result.target > key_result.baseline)
    ):
        findings.append(
            LintFinding(
                config.where(*where, "direction"),
                f"{label} says {key_result.direction} but its target is "
                f"{'below' if key_result.target < key_result.baseline else 'above'} "
                "its baseline",
            )
        )
    if not period:
        findings.append(
            LintFinding(
                config.where(*where),
                f"{label} has no period: add `period:` here or on its objective",
            )
        )
    if not owner:
        findings.append(
            LintFinding(
                config.where(*where),
                f"{label} has no owner: add `owner:` here or on its objective",
            )
        )
    return findings
