"""``okr-sync doctor``: is this installation healthy, and if not, what to do about it.

Checks, in order: the store answers and its schema is the newest; the OKR file loads;
each source in it has its credentials; each source answers them; each source was read in
full recently; what each source supplies, and which key results a field it lacks
blocks; on PostgreSQL, that custom metrics can run confined to the mirror; then the
Prefect pieces the deployments need (the API, the work pool in prefect.yaml, a worker
polling it, the deployments, the off-track automation). Every problem comes with its fix.
Nothing is written: the schema is reported, never migrated, and a source is asked for one
page of changes since now.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import SecretStr, ValidationError
from sqlalchemy import select, text

from connectors.base import Bookmark, UnknownConnectorError, get_connector
from connectors.errors import FatalSourceError, MissingObjectError, SourceError
from connectors.secrets import MissingSecretError, resolve_secret
from okr_sync.automations import shipped_names
from okr_targets.config import ConfigError, OkrConfig
from okr_targets.models import SourceRead, SyncRun, utcnow
from okr_targets.status import RunStatus
from okr_targets.store import METRICS_ROLE, Store, StoreError, latest_stream_counts
from transforms.catalog import MetricCatalog, load
from transforms.dependencies import key_result_needs

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str | None = None
    note: bool = False  # information, not a problem (ok is then True)


def check_store(url: str) -> tuple[list[Finding], Store | None]:
    """Connectivity and schema version, without migrating anything."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import SQLAlchemyError

    from okr_targets.store import alembic_config, redact

    try:
        store = Store(url)
        revision = store.revision()
    except (StoreError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return [
            Finding(
                "store",
                False,
                f"cannot reach {redact(url)}: {reason}",
                "check OKR_SYNC_STORE_URL and that the database server is up and lets this "
                "user in (PostgreSQL: `pg_isready -h HOST`)",
            )
        ], None
    head = ScriptDirectory.from_config(alembic_config(store.engine)).get_current_head()
    found = [Finding("store", True, f"{store.display_url} answers")]
    if revision == head:
        found.append(Finding("schema", True, f"at revision {head}, the newest"))
    else:
        found.append(
            Finding(
                "schema",
                False,
                f"at revision {revision or 'none (empty database)'}; this okr-sync needs {head}",
                "back the store up, then run `okr-sync db upgrade` (docs/operations.md)",
            )
        )
    return found, store


def check_credentials(source: str) -> Finding:
    """Every secret the connector's settings declare is set, directly or as a block."""
    connector = get_connector(source)
    try:
        settings = connector.settings()
    except ValidationError as exc:
        return Finding(f"credentials {source}", False, str(exc).splitlines()[0], _readme(source))
    prefix = str(settings.model_config.get("env_prefix", ""))
    for name, field in type(settings).model_fields.items():
        if (
            field.annotation != SecretStr | None
            or f"{name}_block" not in type(settings).model_fields
        ):
            continue
        try:
            resolve_secret(
                f"{prefix}{name.upper()}",
                getattr(settings, name),
                getattr(settings, f"{name}_block"),
            )
        except MissingSecretError as exc:
            return Finding(
                f"credentials {source}",
                False,
                str(exc),
                f"set {prefix}{name.upper()}, or create a Prefect Secret block and name it in "
                f"{prefix}{name.upper()}_BLOCK; {_readme(source)}",
            )
    return Finding(f"credentials {source}", True, "present")


def check_reachable(source: str, entities: Collection[str] | None = None) -> Finding:
    """Log in and ask for one page of changes since now: small, and proves both ends. The
    stream asked is the first of the ``entities`` the OKR file takes from the source (a
    finance export holds no customers table)."""
    connector = get_connector(source)
    wanted = [s for s in connector.streams if entities is None or s.entity in entities]
    try:
        reader = connector.open(connector.settings())
        try:
            probe = (wanted or list(connector.streams))[0]
            next(iter(reader.read(probe, Bookmark(utcnow()))), None)
        except MissingObjectError:
            pass  # it answered: the account just lacks that object (reported by the sync)
        finally:
            reader.close()
    except MissingSecretError:
        return Finding(f"reach {source}", False, "not tried: credentials missing", None)
    except FatalSourceError as exc:
        return Finding(f"reach {source}", False, str(exc), f"the source refused: {_readme(source)}")
    except (SourceError, OSError) as exc:
        return Finding(
            f"reach {source}",
            False,
            str(exc),
            "check the source's URL setting and that this machine can reach it (proxy, "
            "firewall, DNS)",
        )
    return Finding(f"reach {source}", True, "answers")


def check_last_reads(store: Store, config: OkrConfig, now: datetime) -> list[Finding]:
    """When each source was last read in full, against its freshness limit."""
    limits = config.freshness()
    found = []
    with store.session() as session:
        reads = {read.source: read for read in session.scalars(select(SourceRead))}
        failed = session.scalars(
            select(SyncRun)
            .where(SyncRun.status.in_((RunStatus.FAILED, RunStatus.PARTIAL)))
            .order_by(SyncRun.started_at.desc())
            .limit(1)
        ).first()
    for source in dict.fromkeys(config.spec.sources):
        read = reads.get(source)
        limit = timedelta(seconds=limits.get(source, limits["default"]))
        schedule = (
            "run `okr-sync sync`, or check that the incremental-sync deployment has a worker: "
            "`prefect worker start --pool okr-sync`"
        )
        if read is None:
            found.append(Finding(f"last sync {source}", False, "never read in full", schedule))
            continue
        age = now - read.read_at
        detail = f"last read in full {_age(age)} ago by run {read.run_id}"
        if age > limit:
            reason = f"; the latest failed or partial run said: {failed.reason}" if failed else ""
            found.append(
                Finding(
                    f"last sync {source}",
                    False,
                    f"{detail}, over its {_age(limit)} freshness limit{reason}",
                    f"`okr-sync runs` shows why; {schedule}",
                )
            )
        else:
            found.append(Finding(f"last sync {source}", True, detail))
    return found


def check_fields(store: Store, config: OkrConfig, catalog: MetricCatalog) -> list[Finding]:
    """What each source supplies, as its latest read of each stream found: the objects it
    lacks, and each canonical field it cannot fill with the key results that field blocks."""
    latest = latest_stream_counts(store)
    needs = {
        spec.id: key_result_needs(catalog, spec)
        for _objective, spec, _where in config.key_results()
    }
    found = []
    for source in dict.fromkeys(config.spec.sources):
        mine = {n.split(".", 1)[1]: c for n, c in latest.items() if n.startswith(f"{source}.")}
        if not mine:
            continue  # never read: the last-sync check says so
        read = [name for name, counts in mine.items() if not counts.get("skipped")]
        skipped = [str(counts["skipped"]) for counts in mine.values() if counts.get("skipped")]
        detail = f"reads {', '.join(read) or 'nothing'}" + "".join(f"; {s}" for s in skipped)
        found.append(Finding(f"fields {source}", True, detail))
        gaps = {need: why for c in mine.values() for need, why in (c.get("gaps") or {}).items()}
        for need, why in sorted(gaps.items()):
            blocked = sorted(kr for kr, kr_needs in needs.items() if need in kr_needs)
            if blocked:
                found.append(
                    Finding(
                        f"fields {source}",
                        False,
                        f"lacks {need}, which key result(s) {', '.join(blocked)} need",
                        why,
                    )
                )
            else:
                found.append(
                    Finding(f"fields {source}", True, f"lacks {need} (no key result needs it)")
                )
    return found


METRICS_ROLE_GRANTED = """
SELECT CASE WHEN to_regrole(:role) IS NULL THEN 'missing'
  WHEN pg_has_role(current_user, :role, 'MEMBER')
    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN 'granted'
  ELSE 'not granted' END, current_user"""


def check_metrics_role(store: Store, config: OkrConfig, catalog: MetricCatalog) -> list[Finding]:
    """PostgreSQL: whether the store's user may switch to the role that confines the custom
    metrics the OKR file uses (docs/custom-metrics.md); without it they fail."""
    named = {m for _o, kr, _w in config.key_results() for m in (kr.metric, kr.params.get("metric"))}
    custom = sorted(m for m in named if isinstance(m, str) and m in catalog.origins)
    if not custom or store.engine.dialect.name != "postgresql":
        return []
    with store.engine.connect() as connection:
        state, user = connection.execute(text(METRICS_ROLE_GRANTED), {"role": METRICS_ROLE}).one()
    if state == "granted":
        return [Finding("custom metrics", True, f"run as {METRICS_ROLE}, reading the mirror only")]
    create = f"CREATE ROLE {METRICS_ROLE} NOLOGIN; " if state == "missing" else ""
    return [
        Finding(
            "custom metrics",
            False,
            f"{', '.join(custom)} cannot run: the role {METRICS_ROLE} "
            + ("does not exist" if state == "missing" else f"is not granted to {user}"),
            f'a database administrator runs `{create}GRANT {METRICS_ROLE} TO "{user}";` '
            "(docs/custom-metrics.md)",
        )
    ]


def check_prefect(prefect_file: Path, now: datetime) -> list[Finding]:
    """The Prefect pieces the deployments in ``prefect_file`` need. Without PREFECT_API_URL
    flows run in-process against a throwaway API: nothing to check, and that is no fault."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return [
            Finding(
                "prefect",
                True,
                "PREFECT_API_URL is not set: `okr-sync sync` runs in-process and needs no server",
                "to check the deployments, run doctor with the workers' PREFECT_API_URL "
                "(e.g. `prefect config set PREFECT_API_URL=http://HOST:4200/api`)",
                note=True,
            )
        ]
    try:
        pools = _deployments_by_pool(prefect_file)
        found = []
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        pools = {}
        found = [
            Finding(
                "prefect.yaml",
                False,
                f"cannot read the deployments in {prefect_file}: {exc}",
                "run doctor from the directory you deploy from, or pass --prefect-file",
            )
        ]
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
        if problem is not None:
            return [
                Finding(
                    "prefect api",
                    False,
                    f"cannot reach {url}: {str(problem) or type(problem).__name__}",
                    "start the server (`prefect server start`, docs/operations.md) or correct "
                    "PREFECT_API_URL",
                )
            ]
        found.insert(0, Finding("prefect api", True, f"{url} answers"))
        try:
            for pool, names in pools.items():
                found += _check_pool(client, pool, now)
                found.append(_check_deployments(client, pool, names))
            found += [_check_automation(client, name) for name in shipped_names()]
        except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
            found.append(
                Finding(
                    "prefect api",
                    False,
                    f"{url} answered with an error: {exc}",
                    "check that PREFECT_API_KEY / PREFECT_API_AUTH_STRING match the server",
                )
            )
    return found


def _deployments_by_pool(prefect_file: Path) -> dict[str, list[str]]:
    """Each work pool in prefect.yaml with the names of the deployments it runs."""
    pools: dict[str, list[str]] = {}
    for deployment in yaml.safe_load(prefect_file.read_text())["deployments"]:
        pools.setdefault(deployment["work_pool"]["name"], []).append(deployment["name"])
    return pools


def _check_pool(client: SyncPrefectClient, pool_name: str, now: datetime) -> list[Finding]:
    """The pool exists and is not paused, and a worker has polled it recently (the server
    marks a worker offline after missed heartbeats)."""
    from prefect.client.schemas.objects import WorkerStatus, WorkPoolStatus
    from prefect.exceptions import ObjectNotFound

    check = f"prefect work pool {pool_name}"
    try:
        pool = client.read_work_pool(pool_name)
    except ObjectNotFound:
        return [
            Finding(
                check,
                False,
                "does not exist",
                f"`prefect work-pool create {pool_name} --type process` and "
                f"`prefect work-pool set-concurrency-limit {pool_name} 1` (prefect.yaml)",
            )
        ]
    if pool.status == WorkPoolStatus.PAUSED:
        found = [
            Finding(
                check, False, "is paused: no run starts", f"`prefect work-pool resume {pool_name}`"
            )
        ]
    else:
        status = pool.status.value.lower() if pool.status else "status unknown"
        found = [Finding(check, True, f"exists ({pool.type}, {status})")]
    polled = sorted(
        (w.last_heartbeat_time, w.name, w.status)
        for w in client.read_workers_for_work_pool(pool_name)
        if w.last_heartbeat_time is not None
    )
    online = [name for _at, name, status in polled if status == WorkerStatus.ONLINE]
    last = ""
    if polled:
        at, name, _status = polled[-1]
        last = f"{name}, {_age(max(now - at, timedelta(0)))} ago"
    if online:
        found.append(
            Finding(
                f"prefect worker {pool_name}", True, f"{len(online)} online, last poll by {last}"
            )
        )
    else:
        found.append(
            Finding(
                f"prefect worker {pool_name}",
                False,
                "no worker polls it" + (f" (the last poll was by {last})" if last else ""),
                f"`prefect worker start --pool {pool_name}` where the syncs run, with the "
                "store and source settings in its environment (docs/operations.md)",
            )
        )
    return found


def _check_deployments(client: SyncPrefectClient, pool_name: str, names: list[str]) -> Finding:
    """Each deployment prefect.yaml puts on the pool is there, and not paused."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        WorkPoolFilter,
        WorkPoolFilterName,
    )

    deployed = {
        deployment.name: deployment
        for deployment in client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names)),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool_name])),
        )
    }
    check = f"prefect deployments {pool_name}"
    missing = [name for name in names if name not in deployed]
    if missing:
        return Finding(
            check,
            False,
            f"missing {', '.join(missing)}",
            "`prefect deploy --all` from the directory that holds prefect.yaml",
        )
    paused = [name for name in names if deployed[name].paused]
    if paused:
        return Finding(
            check,
            False,
            f"paused: {', '.join(paused)}",
            "resume them: `prefect deployment resume sync-okrs/NAME`",
        )
    return Finding(check, True, ", ".join(names))


def _check_automation(client: SyncPrefectClient, name: str) -> Finding:
    """The shipped automation is optional: its absence is information, with how to add it."""
    automations = client.read_automations_by_name(name)
    fix = "`okr-sync automations install --notify BLOCK` (docs/operations.md)"
    if not automations:
        detail = f"{name!r} is not installed: nobody is told when a key result goes off track"
        return Finding("prefect automation", True, detail, fix, note=True)
    if not any(automation.enabled for automation in automations):
        return Finding("prefect automation", True, f"{name!r} is disabled", fix, note=True)
    return Finding("prefect automation", True, f"{name!r} is enabled")


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def _readme(source: str) -> str:
    return f"see connectors/{source}/README.md for the settings"


def diagnose(store_url: str, okr_file: Path, prefect_file: Path) -> list[Finding]:
    """Every check, in order; later ones are skipped when what they need is broken."""
    findings, store = check_store(store_url)
    try:
        config, catalog = load(okr_file)
    except ConfigError as exc:
        findings.append(
            Finding("okr file", False, str(exc), "fix the file; `okr-sync lint` lists problems")
        )
        config = None
    if config is not None:
        findings.append(Finding("okr file", True, f"{okr_file} loads"))
        for source in dict.fromkeys(config.spec.sources):
            try:
                credentials = check_credentials(source)
            except UnknownConnectorError as exc:
                findings.append(
                    Finding(f"credentials {source}", False, str(exc), "install its connector")
                )
                continue
            findings.append(credentials)
            if credentials.ok:
                findings.append(check_reachable(source, config.spec.sources[source]))
        if store is not None and all(f.ok for f in findings if f.check == "schema"):
            findings += check_last_reads(store, config, utcnow())
            findings += check_fields(store, config, catalog)
            findings += check_metrics_role(store, config, catalog)
    if store is not None:
        store.dispose()
    return findings + check_prefect(prefect_file, utcnow())
