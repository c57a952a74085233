"""The webhook receiver: each source's signature, and every way a request is turned away."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from okr_sync.cli import DEMO_OKRS, app
from okr_sync.webhooks import (
    SOURCE_CHANGED,
    OkrSources,
    Receiver,
    changed_objects,
    changed_streams,
    create_app,
    source_event,
)

SECRETS = {"hubspot": "hs-client-secret", "zendesk": "zd-signing-secret", "salesforce": "sf-shared"}

pytestmark = pytest.mark.usefixtures("prefect_harness")  # events go to a real Prefect API


def b64_hmac(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hubspot(
    body: bytes, url: str, at: float | None = None, secret: str = SECRETS["hubspot"]
) -> dict:
    stamp = str(int((at or time.time()) * 1000))
    signature = b64_hmac(secret, b"POST" + url.encode() + body + stamp.encode())
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}


def zendesk(body: bytes, at: float | None = None, secret: str = SECRETS["zendesk"]) -> dict:
    stamp = datetime.fromtimestamp(at or time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "X-Zendesk-Webhook-Signature": b64_hmac(secret, stamp.encode() + body),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def salesforce(body: bytes, at: float | None = None, secret: str = SECRETS["salesforce"]) -> dict:
    stamp = str(int(at or time.time()))
    return {
        "X-OKR-Sync-Signature": b64_hmac(secret, stamp.encode() + b"." + body),
        "X-OKR-Sync-Timestamp": stamp,
    }


HUBSPOT_BODY = json.dumps(
    [
        {"eventId": 1, "subscriptionType": "deal.propertyChange", "objectId": 901},
        {"eventId": 2, "subscriptionType": "deal.creation", "objectId": 902},
    ]
).encode()
ZENDESK_BODY = json.dumps(
    {"type": "zen:event-type:ticket.status_changed", "detail": {"id": "35"}}
).encode()
SALESFORCE_BODY = json.dumps(
    {"objects": [{"type": "Opportunity", "id": "006000000000001AAA", "change": "updated"}]}
).encode()


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Receiver(dict(SECRETS)))) as test_client:
        yield test_client


def post(client: TestClient, source: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(f"/webhooks/{source}", content=body, headers=headers)


HUBSPOT_URL = "http://testserver/webhooks/hubspot"


@pytest.mark.parametrize(
    ("source", "body", "sign"),
    [
        ("hubspot", HUBSPOT_BODY, lambda body, **kw: hubspot(body, HUBSPOT_URL, **kw)),
        ("zendesk", ZENDESK_BODY, zendesk),
        ("salesforce", SALESFORCE_BODY, salesforce),
    ],
)
def test_each_source_signature_is_verified_and_every_bad_request_refused(
    client: TestClient, source: str, body: bytes, sign: Any
) -> None:
    headers = sign(body)
    accepted = post(client, source, body, headers)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["source"] == source
    assert accepted.json()["event_id"]

    # the very same request again: a replay
    assert post(client, source, body, headers).status_code == 409
    # signed long ago: a replay, even never seen before
    assert post(client, source, body, sign(body, at=time.time() - 3600)).status_code == 409
    # no signature at all
    assert post(client, source, body, {}).status_code == 401
    # a byte changed after signing
    assert post(client, source, body + b" ", sign(body)).status_code == 403
    # signed with another secret
    assert post(client, source, body, sign(body, secret="guess")).status_code == 403
    # a signed body that is not JSON
    garbage = b"<xml/>"
    refused = post(client, source, garbage, sign(garbage))
    assert refused.status_code == 400
    assert "not JSON" in refused.json()["error"]


def signed_salesforce(body: bytes, stamp: str) -> dict[str, str]:
    return {
        "X-OKR-Sync-Signature": b64_hmac(SECRETS["salesforce"], stamp.encode() + b"." + body),
        "X-OKR-Sync-Timestamp": stamp,
    }


def test_timestamps_that_name_no_moment_are_refused_also_after_a_restart() -> None:
    """Issue 22: a 400-digit HubSpot timestamp was a 500, a Salesforce one signed as ``nan``
    was accepted (NaN passes every comparison), and again by a restarted receiver."""
    huge = "9" * 400
    unsigned = {"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": huge}
    signature = b64_hmac(
        SECRETS["hubspot"], f"POST{HUBSPOT_URL}".encode() + HUBSPOT_BODY + huge.encode()
    )
    signed = {**unsigned, "X-HubSpot-Signature-v3": signature}
    for restart in range(2):  # a new Receiver: its memory of accepted signatures is empty
        with TestClient(create_app(Receiver(dict(SECRETS)))) as fresh:
            for headers in (unsigned, signed):
                refused = post(fresh, "hubspot", HUBSPOT_BODY, headers)
                assert refused.status_code == 401, (restart, refused.text)
                assert "is not epoch milliseconds" in refused.json()["error"]
            for stamp in ("nan", "NaN", "-nan", "inf", "-Infinity", "1e999"):
                refused = post(
                    fresh, "salesforce", SALESFORCE_BODY, signed_salesforce(SALESFORCE_BODY, stamp)
                )
                assert refused.status_code == 401, (restart, stamp, refused.text)
                assert "is not epoch seconds" in refused.json()["error"]


def test_hubspot_signs_the_public_url_behind_a_proxy() -> None:
    receiver = Receiver(dict(SECRETS), public_url="https://hooks.acme.example/")
    with TestClient(create_app(receiver)) as proxied:
        public = "https://hooks.acme.example/webhooks/hubspot"
        assert (
            post(proxied, "hubspot", HUBSPOT_BODY, hubspot(HUBSPOT_BODY, public)).status_code == 202
        )
        internal = hubspot(HUBSPOT_BODY, HUBSPOT_URL)
        assert post(proxied, "hubspot", HUBSPOT_BODY, internal).status_code == 403


def test_hubspot_signs_the_uri_with_some_escapes_decoded(client: TestClient) -> None:
    # HubSpot computes the signature over ...?portal=a:b while the request says a%3Ab
    headers = hubspot(HUBSPOT_BODY, "http://testserver/webhooks/hubspot?portal=a:b")
    answer = client.post("/webhooks/hubspot?portal=a%3Ab", content=HUBSPOT_BODY, headers=headers)
    assert answer.status_code == 202, answer.text


def test_an_event_prefect_did_not_take_is_a_503_and_the_retry_is_accepted() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    receiver = Receiver(dict(SECRETS))
    headers = zendesk(ZENDESK_BODY)
    nobody_there = {PREFECT_API_URL: "http://127.0.0.1:9/api"}
    with temporary_settings(nobody_there), TestClient(create_app(receiver)) as cut_off:
        refused = post(cut_off, "zendesk", ZENDESK_BODY, headers)
    assert refused.status_code == 503
    assert refused.json() == {"error": "the event could not be sent to Prefect"}
    with TestClient(create_app(receiver)) as client:  # the harness's Prefect again
        assert post(client, "zendesk", ZENDESK_BODY, headers).status_code == 202


def test_unconfigured_sources_and_oversized_bodies_are_refused() -> None:
    receiver = Receiver({"zendesk": SECRETS["zendesk"]}, max_body_bytes=1000)
    with TestClient(create_app(receiver)) as only_zendesk:
        refused = post(only_zendesk, "hubspot", HUBSPOT_BODY, hubspot(HUBSPOT_BODY, HUBSPOT_URL))
        assert refused.status_code == 404
        assert "no webhook secret for 'hubspot'" in refused.json()["error"]
        big = json.dumps({"detail": {"id": "1"}, "pad": "x" * 2000}).encode()
        assert post(only_zendesk, "zendesk", big, zendesk(big)).status_code == 413
        assert only_zendesk.get("/healthz").json() == {"status": "ok"}


def test_each_accepted_webhook_is_one_access_line_naming_its_event_and_sync(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(
        {"type": "zen:event-type:ticket.created", "detail": {"id": "8675309", "subject": "Q"}}
    ).encode()
    caplog.set_level(logging.INFO, logger="okr_sync.webhooks")
    answers, lines = [], []
    for at in (time.time() - 1, time.time()):  # two signed requests: a burst of one change
        caplog.clear()
        answer = post(client, "zendesk", body, zendesk(body, at=at))
        assert answer.status_code == 202, answer.text
        answers.append(answer.json())
        [line] = [r.getMessage() for r in caplog.records if r.name == "okr_sync.webhooks"]
        lines.append(line)
        assert line.startswith("zendesk webhook accepted (202): event ")
        assert answers[-1]["event_id"] in line
        assert "8675309" not in line  # nothing of the payload
        assert SECRETS["zendesk"] not in line
    first, second = answers
    assert not first["coalesced"]
    assert f"submitted sync {first['sync']} of zendesk.tickets" in lines[0]
    # nothing runs the harness's task queue: the second rides on the first's queued sync
    assert second["coalesced"]
    assert second["sync"] == first["sync"]
    assert f"coalesced into queued sync {first['sync']} of zendesk.tickets" in lines[1]


def test_a_webhook_of_a_source_the_okr_file_does_not_read_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver(dict(SECRETS), okr_sources=OkrSources(DEMO_OKRS))  # no hubspot
    with TestClient(create_app(receiver)) as client:
        refused = post(client, "hubspot", HUBSPOT_BODY, hubspot(HUBSPOT_BODY, HUBSPOT_URL))
        assert refused.status_code == 404
        assert refused.json() == {
            "error": f"hubspot is not a source of the OKR file {DEMO_OKRS} (its sources: "
            "files, salesforce, zendesk): nothing would sync this change"
        }
        assert "hubspot webhook refused (404)" in caplog.text
        # unsigned, it is refused for that first: the OKR file's sources stay unsaid
        unsigned = post(client, "hubspot", HUBSPOT_BODY, {})
        assert unsigned.status_code == 401
        assert "salesforce" not in unsigned.text
        assert post(client, "zendesk", ZENDESK_BODY, zendesk(ZENDESK_BODY)).status_code == 202


def test_the_event_names_the_source_and_the_objects() -> None:
    objects = changed_objects("hubspot", json.loads(HUBSPOT_BODY))
    assert objects == [
        {"type": "deal", "id": "901", "change": "propertyChange"},
        {"type": "deal", "id": "902", "change": "creation"},
    ]
    assert changed_objects("zendesk", json.loads(ZENDESK_BODY)) == [
        {"type": "ticket", "id": "35", "change": "status_changed"}
    ]
    assert changed_objects("salesforce", json.loads(SALESFORCE_BODY)) == [
        {"type": "Opportunity", "id": "006000000000001AAA", "change": "updated"}
    ]
    event = source_event("hubspot", objects)
    assert event["event"] == SOURCE_CHANGED
    assert event["resource"]["prefect.resource.id"] == "okr-sync.source.hubspot"
    assert event["resource"]["okr-sync.source"] == "hubspot"
    assert event["payload"]["objects"] == objects
    assert [r["prefect.resource.id"] for r in event["related"]] == [
        "okr-sync.hubspot.deal.901",
        "okr-sync.hubspot.deal.902",
    ]
    # a burst of thousands of objects still makes one small event
    many = [{"type": "deal", "id": str(n), "change": "creation"} for n in range(5000)]
    big = source_event("hubspot", many)
    assert big["payload"]["object_count"] == 5000
    assert len(big["payload"]["objects"]) == 100
    assert len(big["related"]) == 20
    # no secret travels in the event
    assert SECRETS["hubspot"] not in json.dumps(event)


def test_serve_without_any_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for source in ("HUBSPOT", "ZENDESK", "SALESFORCE"):
        monkeypatch.delenv(f"OKR_SYNC_WEBHOOK_{source}_SECRET", raising=False)
        monkeypatch.delenv(f"OKR_SYNC_WEBHOOK_{source}_SECRET_BLOCK", raising=False)
    result = CliRunner().invoke(app, ["webhooks", "serve", "--port", "0"])
    assert result.exit_code == 1
    assert "no webhook secret is set" in result.stderr
    monkeypatch.setenv("OKR_SYNC_WEBHOOK_ZENDESK_SECRET_BLOCK", "no-such-block")
    result = CliRunner().invoke(app, ["webhooks", "serve", "--port", "0"])
    assert result.exit_code == 1
    assert "Prefect Secret block 'no-such-block' not found" in result.stderr


def streams_of(source: str, body: Any) -> tuple[str, ...] | None:
    return changed_streams(source, changed_objects(source, body))


def test_a_change_re_reads_the_streams_its_object_type_touches() -> None:
    # HubSpot subscriptionType "<object>.<change>" (developers.hubspot.com/docs/api/webhooks)
    def hubspot_event(kind: str) -> dict:
        return {"subscriptionType": kind, "objectId": 7}

    assert streams_of("hubspot", [hubspot_event("deal.propertyChange")]) == ("hubspot.deals",)
    assert streams_of("hubspot", [hubspot_event("deal.merge")]) == ("hubspot.deals",)
    assert streams_of("hubspot", [hubspot_event("company.creation")]) == ("hubspot.companies",)
    assert streams_of("hubspot", [hubspot_event("ticket.deletion")]) == ("hubspot.tickets",)
    both = [hubspot_event("ticket.restore"), hubspot_event("deal.creation")]
    assert streams_of("hubspot", both) == ("hubspot.deals", "hubspot.tickets")
    # deals and tickets carry their company through associations
    assert streams_of("hubspot", [hubspot_event("company.associationChange")]) == (
        "hubspot.companies",
        "hubspot.deals",
        "hubspot.tickets",
    )
    # a type the table does not know, a generic object.* event, no object: every stream
    assert streams_of("hubspot", [hubspot_event("contact.creation")]) is None
    assert streams_of("hubspot", [hubspot_event("object.propertyChange")]) is None
    assert (
        streams_of("hubspot", [hubspot_event("deal.creation"), hubspot_event("contact.merge")])
        is None
    )
    assert streams_of("hubspot", []) is None

    # Zendesk "zen:event-type:<object>.<change>" (developer.zendesk.com webhook event types);
    # a CSAT rating arrives as a ticket event
    def zendesk_event(kind: str) -> dict:
        return {"type": f"zen:event-type:{kind}", "detail": {"id": "35"}}

    ticket = ("zendesk.tickets", "zendesk.satisfaction_ratings")
    assert streams_of("zendesk", zendesk_event("ticket.status_changed")) == ticket
    assert streams_of("zendesk", zendesk_event("ticket.comment_added")) == ticket
    organization = ("zendesk.organizations",)
    assert streams_of("zendesk", zendesk_event("organization.name_changed")) == organization
    assert streams_of("zendesk", zendesk_event("organization.deleted")) == organization
    assert streams_of("zendesk", zendesk_event("user.active_changed")) is None

    # Salesforce: the signed callout names the SObject
    def salesforce_body(*kinds: str) -> dict:
        return {"objects": [{"type": kind, "id": "001", "change": "updated"} for kind in kinds]}

    assert streams_of("salesforce", salesforce_body("Opportunity")) == ("salesforce.Opportunity",)
    assert streams_of("salesforce", salesforce_body("Case", "Account")) == (
        "salesforce.Account",
        "salesforce.Case",
    )
    assert streams_of("salesforce", salesforce_body("DatedConversionRate")) == (
        "salesforce.DatedConversionRate",
    )
    assert streams_of("salesforce", salesforce_body("Lead")) is None
    assert streams_of("salesforce", {"objects": []}) is None
