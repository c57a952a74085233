"""The digest flow: what needs attention and what changed, sent through a Prefect block.

It reads the store the worker's ``OKR_SYNC_STORE_URL`` names (there is deliberately no
store parameter: Prefect records parameters, and a store URL may carry a password), builds
the digest of the last ``days`` days (``okr_targets/digest.py``) and sends it through the
block the operator chose by name: a Slack webhook or any other ``NotificationBlock``, or
SMTP credentials (prefect-email's ``EmailServerCredentials``) with the recipients.
prefect.yaml runs it weekly (deployment ``weekly-digest``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from functools import partial
from typing import Annotated, Any

from prefect import flow
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.states import Failed, State
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect_email import EmailServerCredentials
from pydantic import Field

from flows.logs import run_logger
from flows.settings import Settings, SettingsError
from okr_targets.changes import what_changed
from okr_targets.digest import Digest, build_digest
from okr_targets.models import Organisation, utcnow
from okr_targets.report import build_report
from okr_targets.store import Store, StoreError


class DigestError(Exception):
    """The digest could not be built or sent; the message is one line with no secret."""


Send = Callable[[Digest], None]


def load_sender(slug: str, email_to: list[str] | None, email_from: str | None) -> Send:
    """How to send through the saved block ``TYPE/NAME``: a notification block
    (``slack-webhook/okr-digest``, ``custom-webhook/…``) or SMTP credentials
    (``email-server-credentials/…``, which need ``email_to``)."""
    if "/" not in slug:
        raise DigestError(
            f"notify {slug!r} is not TYPE/NAME, e.g. slack-webhook/okr-digest or "
            "email-server-credentials/okr-mail"
        )
    try:
        block = Block.load(slug)
    except ValueError as exc:  # Prefect's "Unable to find block document named …"
        raise DigestError(f"notification block {slug!r}: {exc}") from None
    if isinstance(block, EmailServerCredentials):
        if not email_to:
            raise DigestError(f"{slug} sends e-mail: give email_to, the recipients")
        return partial(send_email, block, email_to, email_from)
    if isinstance(block, NotificationBlock):
        return partial(notify, block)
    raise DigestError(f"block {slug!r} is a {type(block).__name__}, not a notification block")


def notify(block: NotificationBlock, digest: Digest) -> None:
    with block.raise_on_failure():  # an Apprise block otherwise only logs a failure
        sent: Any = block.notify(digest.body, digest.subject)
        if inspect.iscoroutine(sent):  # a block with only the abstract async notify
            run_coro_as_sync(sent)


def send_email(
    credentials: EmailServerCredentials, to: list[str], sender: str | None, digest: Digest
) -> None:
    """The digest as a plain-text e-mail over the credentials' SMTP server (SSL, STARTTLS)."""
    message = EmailMessage()
    message["Subject"] = digest.subject
    message["From"] = sender or credentials.username or "okr-sync"
    message["To"] = ", ".join(to)
    message.set_content(digest.body)
    with credentials.get_server() as server:
        server.send_message(message)


def store_digest(store_url: str, days: int) -> Digest:
    """The digest of the store's last ``days`` days, as of now."""
    now = utcnow()
    try:
        store = Store.open(store_url)
    except StoreError as exc:
        raise DigestError(str(exc)) from None
    try:
        with store.session() as session:
            changes = what_changed(session, now - timedelta(days=days), now)
            lines = build_report(session, now)
            organisation = session.get(Organisation, 1)
    finally:
        store.dispose()
    company = organisation.company if organisation else None
    return build_digest(changes, lines, f"{company} OKR digest" if company else "OKR digest")


@flow(name="okr-digest")
def send_digest(
    notify: str,
    days: Annotated[int, Field(ge=1, le=366)] = 7,
    email_to: list[str] | None = None,
    email_from: str | None = None,
) -> Digest | State[Any]:
    """Send what needs attention and what changed in the last ``days`` days.

    Args:
        notify: The Prefect block to send through, as TYPE/NAME: a notification block
            (slack-webhook/NAME, custom-webhook/NAME, ...) or SMTP credentials
            (email-server-credentials/NAME); docs/operations.md shows how to create one
            without the UI.
        days: The window: the last N days up to the run.
        email_to: The recipients, for an email-server-credentials block.
        email_from: The sender, for an email-server-credentials block (default: its
            username).
    """
    logger = run_logger()
    try:
        send = load_sender(notify, email_to, email_from)
        digest = store_digest(Settings().store_url, days)
        send(digest)
    except (DigestError, SettingsError) as exc:
        logger.error("digest not sent: %s", exc)
        return Failed(message=str(exc))
    except Exception as exc:  # the block's own failure: an HTTP error, a refused mailbox
        message = f"{notify} could not send the digest: {type(exc).__name__}"
        logger.error("digest not sent: %s", message)
        return Failed(message=message)
    logger.info(
        "sent the digest through %s: %d need attention, %d moved",
        notify,
        digest.attention,
        digest.moved,
    )
    return digest
