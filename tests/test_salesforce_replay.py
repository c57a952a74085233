"""Replay of a real org's recorded answers (tests/recordings/salesforce, see its README).

The recordings come from a Developer Edition org (CumulusCI's shared cassettes): one
currency, no custom fields. A tiny replay app serves them as that org would, and the
connector must select only fields the recorded describes list, skip the objects the org
lacks, and map every recorded record or reject it with a reason a person would agree with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.base import get_connector, open_reader
from connectors.errors import FatalSourceError, MissingObjectError
from connectors.salesforce.client import SalesforceReader
from connectors.salesforce.mapping import MappingError, OrgFields, account_to_customer
from connectors.salesforce.settings import FieldMap
from connectors.sandbox.server import RunningServer, serve_tls

RECORDINGS = Path(__file__).parent / "recordings" / "salesforce"


def recorded(name: str) -> Any:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


def replay_app() -> Starlette:
    """The recorded org: its global describe and the describes that were recorded."""

    async def token(request: Request) -> JSONResponse:
        base = f"{request.url.scheme}://{request.url.netloc}"
        return JSONResponse({"access_token": "replay", "instance_url": base})

    async def global_describe(request: Request) -> JSONResponse:
        return JSONResponse(recorded("describe_global"))

    async def describe(request: Request) -> JSONResponse:
        path = RECORDINGS / f"describe_{request.path_params['sobject']}.json"
        if not path.is_file():  # not recorded: answered as Salesforce answers a bad path
            message = "The requested resource does not exist"
            return JSONResponse([{"errorCode": "NOT_FOUND", "message": message}], 404)
        return JSONResponse(json.loads(path.read_text()))

    base = "/services/data/v{version}/sobjects"
    return Starlette(
        routes=[
            Route("/services/oauth2/token", token, methods=["POST"]),
            Route(base, global_describe),
            Route(base + "/", global_describe),
            Route(base + "/{sobject}/describe", describe),
        ]
    )


@pytest.fixture(scope="module")
def replay() -> Iterator[RunningServer]:
    with serve_tls(replay_app()) as server:
        yield server


@pytest.fixture
def reader(replay: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceReader]:
    monkeypatch.delenv("OKR_SYNC_SALESFORCE_FIELD_MAP", raising=False)
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_LOGIN_URL", replay.base_url)
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_CLIENT_ID", "replay")
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_CLIENT_SECRET", "replay")
    monkeypatch.setenv("OKR_SYNC_SALESFORCE_CA_BUNDLE", str(replay.ca_file))
    opened = open_reader(get_connector("salesforce"))
    assert isinstance(opened, SalesforceReader)
    yield opened
    opened.close()


def stream(name: str) -> Any:
    return next(s for s in get_connector("salesforce").streams if s.name == name)


def selected(soql: str) -> list[str]:
    match = re.match(r"SELECT (.*?) FROM ", soql)
    assert match is not None, soql
    return match[1].split(", ")


def test_only_fields_the_recorded_describes_list_are_selected(reader: SalesforceReader) -> None:
    for name in ("Account", "Opportunity", "Case"):
        listed = {field["name"] for field in recorded(f"describe_{name}")["fields"]}
        fields = selected(reader.soql(stream(name), None, None))
        assert set(fields) <= listed, name
    # What a Developer Edition org lets us read, as its recorded describes list it.
    assert selected(reader.soql(stream("Opportunity"), None, None)) == [
        *("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "Name", "AccountId"),
        *("OwnerId", "Amount", "StageName", "IsClosed", "IsWon", "Type", "CloseDate"),
        "IsDeleted",
    ]  # no CurrencyIsoCode: the org has one currency
    assert "Industry" in selected(reader.soql(stream("Account"), None, None))


def test_objects_the_recorded_org_lacks_are_skipped(reader: SalesforceReader) -> None:
    for name in ("CurrencyType", "DatedConversionRate"):
        with pytest.raises(MissingObjectError, match=f"the org has no {name} object"):
            reader.soql(stream(name), None, None)


def test_a_mapped_field_the_recorded_describe_lacks_is_named(
    reader: SalesforceReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader.settings = reader.settings.model_copy(
        update={"field_map": FieldMap(customer_since="Customer_Since__c")}
    )
    with pytest.raises(
        FatalSourceError, match=r"maps customer_since to Account\.Customer_Since__c"
    ):
        reader.soql(stream("Account"), None, None)


def test_every_recorded_account_maps_or_is_rejected_with_a_reason() -> None:
    answer = recorded("query_Account")
    asked = set(selected(answer["query"]))
    org = OrgFields(FieldMap(), currency="USD")
    assert answer["records"], "the recording holds records"
    for record in answer["records"]:
        reason = _rejection(record, org)
        if reason is not None:
            # The recorded query did not select the audit fields: the reason names the
            # field the record lacks, and it is one the query never asked for.
            missing = re.fullmatch(r"(\w+) is missing", reason)
            assert missing is not None, reason
            assert missing[1] not in asked
            assert missing[1] not in record
            continue
        customer = account_to_customer(record, org)
        assert customer["source_id"] == record["Id"]
        assert customer["name"] == record["Name"]
        assert customer["segment"] == record["Industry"]


def _rejection(record: dict[str, Any], org: OrgFields) -> str | None:
    """Why the mapping refuses the record; None when it maps."""
    try:
        account_to_customer(record, org)
    except MappingError as exc:
        return str(exc)
    return None
