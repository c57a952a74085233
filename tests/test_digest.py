"""The weekly digest: the deployment's flow sends what needs attention and what moved, and why.

The store is tests/test_changes.py's (the fixture's run, then a later run whose records are
known); the flow is the one prefect.yaml's ``weekly-digest`` deployment names, run with its
parameters on the session's Prefect test server, and the notification block posts to a
webhook receiver on loopback started here. At ``LATER`` + 1 hour, scored as the dashboard
scores (Q4 63.6 % elapsed, Salesforce read at ``LATER``, Zendesk three days before ``NOW``):

- off track: win-rate (26 % of 25 → 35, progress 10 %) and alice-deals (1 of 5);
- stale: first-response (Zendesk data older than a day);
- at risk: new-customers (4.5 of 10);
- moved in the last day: q3-revenue (restated) and revenue (+110k USD).
"""

from __future__ import annotations

import json
import queue
import socketserver
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import time_machine
import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.states import State
from prefect_email import EmailServerCredentials

from okr_targets.digest import Digest
from okr_targets.models import SourceRead
from okr_targets.store import Store
from tests.okr_fixture import fill_store
from tests.test_changes import LATER, later_changes

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "digest-db-pa55"


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """A webhook receiver on loopback: each POSTed JSON body lands in the queue."""
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put({"path": self.path, **json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    thread.join()
    server.server_close()


def deployment() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return next(d for d in config["deployments"] if d["name"] == "weekly-digest")


def digest_store(url: str) -> None:
    fill_store(url)
    later_changes(url)
    store = Store.open(url)
    with store.session() as session:  # the later run read Salesforce in full
        read = session.get(SourceRead, "salesforce")
        assert read is not None
        read.read_at, read.run_id = LATER, "run-2"
        session.commit()
    store.dispose()


def test_the_weekly_digest_deployment_sends_attention_first_then_movements_and_why(
    sqlite_url: str,
    receiver: tuple[str, queue.Queue[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    digest_store(sqlite_url)
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    address, received = receiver
    CustomWebhookNotificationBlock(
        name="okr digest",
        url=f"{address}/digest",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        headers={},
        cookies={},
    ).save("okr-digest-test", overwrite=True)
    found = deployment()
    flow: Flow[..., Any] = load_flow_from_entrypoint(str(ROOT / found["entrypoint"]))
    parameters = {**found["parameters"], "notify": "custom-webhook/okr-digest-test", "days": 1}

    with time_machine.travel(LATER + timedelta(hours=1), tick=True):
        result = flow(**parameters)
    assert isinstance(result, Digest), result
    sent = received.get(timeout=30)
    assert sent["path"] == "/digest"
    assert sent["subject"].startswith(
        "Grow Co OKR digest: 4 need attention, 2 moved (2026-11-27 13:00 UTC"
    )
    body = sent["body"]
    assert body == result.body
    lines = body.splitlines()
    attention = lines[lines.index("Needs attention (4):") + 1 : lines.index("What moved (2):")]
    # names from the OKR file's people: map and the CRM's reps; progress against time
    assert attention == [
        "- 🔴 off track: Raise the win rate from 25% to 35%: 26% (target 35%), Samantha Seller"
        " — 10% done, 64% expected",
        "- 🔴 off track: Alice closes 5 deals: 1 deals (target 5 deals), Alice Adams"
        " — 20% done, 64% expected",
        "- 🟣 stale: Answer within 4 hours: 5 hours (target 4 hours), Sue Porter"
        " — zendesk data is 4 days old (limit 24 h)",
        "- 🟡 at risk: Win 10 new customers: 4.5 customers (target 10 customers),"
        " Samantha Seller — 45% done, 64% expected",
        "",
    ]
    moved = lines[lines.index("What moved (2):") + 1 :]
    assert moved[:5] == [
        "- Book 100k in Q3: 100k USD → 112k USD (+12.3k USD)",
        "  deals: 1 added (1 edited at the source)",
        "  restated 2026-Q3 (closed): was 100k USD, final since 2026-10-02;"
        " late data moved it +12.3k USD",
        "- Book 1M in won revenue: 600k USD → 710k USD (+110k USD)",
        "  deals: 1 added (1 new at the source), 1 removed (1 deleted at the source),"
        " 1 edited at the source",
    ]
    assert "Unchanged: 4; not measured yet: 0." in body
    assert "sqlite" not in body  # no store, no URL


def test_a_missing_block_or_a_store_password_never_reaches_the_digest(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest_store(sqlite_url)
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    flow: Flow[..., Any] = load_flow_from_entrypoint(str(ROOT / deployment()["entrypoint"]))
    missing = flow(notify="custom-webhook/no-such-block", return_state=True)
    assert isinstance(missing, State)
    assert missing.is_failed()
    assert "notification block 'custom-webhook/no-such-block'" in str(missing.message)
    assert "store_url" not in flow.parameters.properties  # the store is the worker's setting

    monkeypatch.setenv("OKR_SYNC_STORE_URL", f"postgresql://okr:{PASSWORD}@127.0.0.1:1/nope")
    CustomWebhookNotificationBlock(
        name="x", url="http://127.0.0.1:9/x", headers={}, cookies={}
    ).save("okr-digest-unused", overwrite=True)
    refused = flow(notify="custom-webhook/okr-digest-unused", return_state=True)
    assert refused.is_failed()
    assert PASSWORD not in str(refused.message)


@pytest.fixture
def mailbox() -> Iterator[tuple[int, queue.Queue[bytes]]]:
    """An SMTP server on loopback that accepts every message; each lands in the queue."""
    received: queue.Queue[bytes] = queue.Queue()

    class Session(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 localhost test SMTP")
            while line := self.rfile.readline():
                verb = line[:4].upper()
                if verb == b"DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    data = b""
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data += chunk
                    received.put(data)
                    self.reply("250 queued")
                elif verb == b"QUIT":
                    self.reply("221 bye")
                    return
                else:  # EHLO, MAIL FROM, RCPT TO, RSET, NOOP
                    self.reply("250 ok")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()
    thread.join()
    server.server_close()


def test_the_digest_goes_out_by_email_through_smtp_credentials(
    sqlite_url: str, mailbox: tuple[int, queue.Queue[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    digest_store(sqlite_url)
    monkeypatch.setenv("OKR_SYNC_STORE_URL", sqlite_url)
    port, received = mailbox
    EmailServerCredentials(smtp_server="127.0.0.1", smtp_port=port, smtp_type="INSECURE").save(
        "okr-digest-mail", overwrite=True
    )
    flow: Flow[..., Any] = load_flow_from_entrypoint(str(ROOT / deployment()["entrypoint"]))
    no_recipients = flow(notify="email-server-credentials/okr-digest-mail", return_state=True)
    assert isinstance(no_recipients, State)
    assert no_recipients.is_failed()
    assert "give email_to, the recipients" in str(no_recipients.message)

    with time_machine.travel(LATER + timedelta(hours=1), tick=True):
        result = flow(
            notify="email-server-credentials/okr-digest-mail",
            days=1,
            email_to=["vp-sales@example.com", "ceo@example.com"],
            email_from="okr-sync@example.com",
        )
    assert isinstance(result, Digest), result
    mail = message_from_bytes(received.get(timeout=30), policy=default)
    assert mail["To"] == "vp-sales@example.com, ceo@example.com"
    assert mail["From"] == "okr-sync@example.com"
    assert mail["Subject"] == result.subject
    content = mail.get_content()
    assert content.replace("\r\n", "\n") == result.body  # SMTP lines end in CRLF
    assert "- Book 1M in won revenue: 600k USD → 710k USD (+110k USD)" in result.body
