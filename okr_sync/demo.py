"""The demo's sample company: one generated world served by each source's emulator.

Salesforce holds the CRM (reps, accounts, opportunities, exchange rates) and Zendesk the
helpdesk; the helpdesk's organizations are the CRM's customers (same name, domain, and
the Salesforce Account Id as external id), so support data joins CRM customers. The
finance system is a CSV export read by the files connector (:func:`write_finance_export`):
an invoice line per won opportunity with its direct cost, and the monthly hosting bill.
"""

from __future__ import annotations

import importlib
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import Connector, SandboxSpec, available_connectors
from connectors.sandbox.server import RunningServer, serve_tls

if TYPE_CHECKING:
    from connectors.salesforce.sandbox.data import SalesforceOrg


@dataclass(frozen=True)
class DemoWorld:
    servers: dict[str, RunningServer]
    env: dict[str, str]
    data: dict[str, Any]  # each source's generated data, live: a change shows at once


LAX_EXPORTS, LAX_CALLS = 10_000, 100_000
"""Zendesk's limits (10 exports, 700 calls a minute) raised, for runs that repeat syncs
within a minute to measure something else (benchmarks/no_change.py)."""


@contextmanager
def demo_sandboxes(seed: int, as_of: datetime, *, lax_limits: bool = False) -> Iterator[DemoWorld]:
    """Serve a generated Salesforce org and its Zendesk helpdesk, with the finance export of
    the org in a temporary directory, until the block exits; ``lax_limits`` raises
    Zendesk's rate limits (``LAX_EXPORTS``, ``LAX_CALLS``)."""
    from connectors.salesforce import sandbox as salesforce
    from connectors.salesforce.sandbox import emulator as salesforce_emulator
    from connectors.salesforce.sandbox.data import customer_seeds, generate_org
    from connectors.zendesk import sandbox as zendesk
    from connectors.zendesk.sandbox import emulator as zendesk_emulator
    from connectors.zendesk.sandbox.data import generate_helpdesk

    org = generate_org(seed=seed, as_of=as_of)
    helpdesk = generate_helpdesk(seed=seed, as_of=as_of, companies=customer_seeds(org))
    with ExitStack() as stack:
        finance = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="okr-finance-")))
        crm = stack.enter_context(serve_tls(salesforce_emulator.create_app(org), name="salesforce"))
        exports, calls = (LAX_EXPORTS, LAX_CALLS) if lax_limits else (None, None)
        app = (
            zendesk_emulator.create_app(
                helpdesk, export_rate_limit=LAX_EXPORTS, rate_limit=LAX_CALLS
            )
            if lax_limits
            else zendesk_emulator.create_app(helpdesk)
        )
        support = stack.enter_context(serve_tls(app, name="zendesk"))
        zendesk_env = zendesk.sandbox_env(support, export_rate_limit=exports, rate_limit=calls)
        env = salesforce.sandbox_env(crm) | zendesk_env | finance_env(org, seed, finance)
        yield DemoWorld(
            {"salesforce": crm, "zendesk": support}, env, {"salesforce": org, "zendesk": helpdesk}
        )


HOSTING_PER_MONTH = Decimal("45000.00")
"""The sample company's monthly hosting bill (USD): a cost with no customer, growing 1% a
month, so gross profit is not simply a share of revenue."""


def write_finance_export(org: SalesforceOrg, seed: int, directory: Path) -> None:
    """The sample company's ledger as the files connector reads it: ``finance_lines.csv``
    and its exchange rates, ``fx_rates.csv``, deterministic for (org, seed).

    Each won opportunity is invoiced: a line of its amount and currency on its close date,
    for its account (the Salesforce Account Id is the finance system's customer id) and the
    account's industry as segment, with a direct cost of 45-65% of the amount. On the first
    of each month the hosting bill books a cost-only line in USD. The rates are the org's
    (static and dated), so both systems convert alike.
    """
    from connectors.files.sandbox import write_csv

    rng = random.Random(seed * 104729 + 24)
    industry = {account["Id"]: account.get("Industry") for account in org.records("Account")}
    lines: list[dict[str, Any]] = []
    months: set[date] = set()
    for opp in org.records("Opportunity"):
        if not opp["IsWon"] or opp.get("Amount") is None:
            continue
        booked = date.fromisoformat(opp["CloseDate"])
        months.add(booked.replace(day=1))
        amount = Decimal(str(opp["Amount"])).quantize(Decimal("0.01"))
        share = Decimal(rng.randrange(45, 66)) / 100
        lines.append(
            {
                "id": f"INV-{opp['Id']}",
                "updated_at": datetime.combine(booked, time(18), UTC),
                "customer_id": opp["AccountId"],
                "segment": industry.get(opp["AccountId"]),
                "amount": amount,
                "cost": (amount * share).quantize(Decimal("0.01")),
                "currency": opp["CurrencyIsoCode"],
                "booked_on": booked,
                "description": opp["Name"],
            }
        )
    for index, month in enumerate(sorted(months)):
        bill = (HOSTING_PER_MONTH * Decimal("1.01") ** index).quantize(Decimal("0.01"))
        lines.append(
            {
                "id": f"HOST-{month:%Y-%m}",
                "updated_at": datetime.combine(month, time(6), UTC),
                "customer_id": None,
                "segment": None,
                "amount": Decimal(0),
                "cost": bill,
                "currency": "USD",
                "booked_on": month,
                "description": "Hosting",
            }
        )
    write_csv(directory / "finance_lines.csv", sorted(lines, key=lambda line: line["id"]))
    write_csv(directory / "fx_rates.csv", _org_rates(org))


def _org_rates(org: SalesforceOrg) -> list[dict[str, Any]]:
    """The org's static and dated rates as an ``fx_rates`` table."""
    rates: list[dict[str, Any]] = []
    for rate in org.records("CurrencyType"):
        rates.append(
            {
                "id": rate["IsoCode"],
                "updated_at": rate["SystemModstamp"],
                "currency": rate["IsoCode"],
                "rate": rate["ConversionRate"],
                "is_corporate": rate["IsCorporate"],
                "valid_from": None,
                "valid_to": None,
            }
        )
    for rate in org.records("DatedConversionRate"):
        following = rate["NextStartDate"]
        rates.append(
            {
                "id": rate["Id"],
                "updated_at": rate["SystemModstamp"],
                "currency": rate["IsoCode"],
                "rate": rate["ConversionRate"],
                "is_corporate": False,
                "valid_from": rate["StartDate"],
                "valid_to": None if following == "9999-12-31" else following,
            }
        )
    return rates


def finance_env(org: SalesforceOrg, seed: int, directory: Path) -> dict[str, str]:
    """Write the finance export into ``directory``; the files connector's settings to read it."""
    write_finance_export(org, seed, directory)
    return {"OKR_SYNC_FILES_DIRECTORY": str(directory)}


SANDBOX_SOURCES = ("salesforce", "zendesk", "hubspot")  # generated by seed, or --data


@dataclass(frozen=True)
class ServedSandbox:
    """An emulator to serve, and the settings (exports) that reach it once served."""

    app: Any
    env: Callable[[RunningServer], dict[str, str]]


def served_sandbox(
    source: str, seed: int, as_of: datetime, data: Path | None = None
) -> ServedSandbox:
    """The emulator ``okr-sync sandbox`` serves for ``source`` and its settings' exports.

    The built-in ones generate their data from ``seed`` (or load ``data``); an installed
    connector's is the ``sandbox`` it declares (as for the contract test), if that is an
    emulator: a connector reading files or a database has nothing to serve.
    """
    if source in SANDBOX_SOURCES:
        module = importlib.import_module(f"connectors.{source}.sandbox")
        return ServedSandbox(sandbox_app(source, seed, as_of, data), module.sandbox_env)
    spec = _declared_sandbox(available_connectors().get(source))
    if spec is None:
        choices = ", ".join(servable_sandboxes())
        raise ValueError(f"no sandbox to serve for {source!r}; choose one of {choices}")
    if data is not None:
        raise ValueError(f"--data is for {', '.join(SANDBOX_SOURCES)}: {source} serves its own")
    return ServedSandbox(spec.app, spec.env)


def servable_sandboxes() -> list[str]:
    """Every source ``okr-sync sandbox`` can serve: built-in or installed."""
    installed = available_connectors()
    plugins = [name for name in sorted(installed) if name not in SANDBOX_SOURCES]
    served = []
    for name in plugins:
        try:
            if _declared_sandbox(installed[name]):
                served.append(name)
        except ValueError:  # a broken sandbox is said when asked for, not in this list
            pass
    return [*SANDBOX_SOURCES, *served]


def _declared_sandbox(connector: Connector | None) -> SandboxSpec | None:
    """A connector's declared sandbox when it is an emulator to serve; None otherwise."""
    if connector is None or connector.sandbox is None:
        return None
    try:
        spec = connector.sandbox()
    except Exception as exc:  # a third party's sandbox: one line, not a traceback
        raise ValueError(
            f"the {connector.name} connector's sandbox cannot be built: {type(exc).__name__}: {exc}"
        ) from None
    return spec if spec.app is not None else None


def sandbox_app(source: str, seed: int, as_of: datetime, data: Path | None = None) -> Any:
    """A built-in source's emulator, serving generated data or a seed directory of JSON
    Lines."""
    if source == "salesforce":
        from connectors.salesforce.sandbox.data import generate_org, load_org
        from connectors.salesforce.sandbox.emulator import create_app

        return create_app(load_org(data) if data else generate_org(seed=seed, as_of=as_of))
    if source == "zendesk":
        from connectors.salesforce.sandbox.data import customer_seeds, generate_org
        from connectors.zendesk.sandbox.data import generate_helpdesk, load_helpdesk
        from connectors.zendesk.sandbox.emulator import create_app as create_helpdesk_app

        if data:
            return create_helpdesk_app(load_helpdesk(data))
        companies = customer_seeds(generate_org(seed=seed, as_of=as_of))
        return create_helpdesk_app(generate_helpdesk(seed=seed, as_of=as_of, companies=companies))
    if source == "hubspot":
        from connectors.hubspot.sandbox.data import generate_portal, load_portal
        from connectors.hubspot.sandbox.emulator import create_app as create_portal_app

        return create_portal_app(
            load_portal(data) if data else generate_portal(seed=seed, as_of=as_of)
        )
    raise ValueError(f"no sandbox for {source!r}; choose one of {', '.join(SANDBOX_SOURCES)}")
