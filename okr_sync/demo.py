"""The demo's sample company: one generated world served by each source's emulator.

Salesforce holds the CRM (reps, accounts, opportunities, exchange rates) and Zendesk the
helpdesk; the helpdesk's organizations are the CRM's customers (same name, domain, and
the Salesforce Account Id as external id), so support data joins CRM customers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.sandbox.server import RunningServer, serve_tls


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
    """Serve a generated Salesforce org and its Zendesk helpdesk until the block exits;
    ``lax_limits`` raises Zendesk's rate limits (``LAX_EXPORTS``, ``LAX_CALLS``)."""
    from connectors.salesforce import sandbox as salesforce
    from connectors.salesforce.sandbox import emulator as salesforce_emulator
    from connectors.salesforce.sandbox.data import customer_seeds, generate_org
    from connectors.zendesk import sandbox as zendesk
    from connectors.zendesk.sandbox import emulator as zendesk_emulator
    from connectors.zendesk.sandbox.data import generate_helpdesk

    org = generate_org(seed=seed, as_of=as_of)
    helpdesk = generate_helpdesk(seed=seed, as_of=as_of, companies=customer_seeds(org))
    with ExitStack() as stack:
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
        env = salesforce.sandbox_env(crm) | zendesk_env
        yield DemoWorld(
            {"salesforce": crm, "zendesk": support}, env, {"salesforce": org, "zendesk": helpdesk}
        )


SANDBOX_SOURCES = ("salesforce", "zendesk", "hubspot")


def sandbox_app(source: str, seed: int, as_of: datetime, data: Path | None = None) -> Any:
    """One source's emulator, serving generated data or a seed directory of JSON Lines."""
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


def sandbox_env(source: str, server: RunningServer) -> dict[str, str]:
    from connectors.base import get_connector

    module = importlib.import_module(f"connectors.{get_connector(source).name}.sandbox")
    env: dict[str, str] = module.sandbox_env(server)
    return env
