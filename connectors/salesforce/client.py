"""A simple-salesforce client from typed settings, and the one place its errors are mapped.

Login is the OAuth 2.0 client-credentials flow against ``login_url`` (a My Domain URL, or
the sandbox), done with the same trusted session the client then uses, so a CA given in
settings is honoured even where ``REQUESTS_CA_BUNDLE`` is exported.

Before reading, the reader learns what the org has, once per reader: the global describe
(which objects: ``CurrencyType`` only with multiple currencies, ``DatedConversionRate`` only
with advanced currency management) and each object's describe (which fields). It selects
only fields that exist; an object the org lacks is skipped with the reason, a mapped field
it lacks is an error naming it, and what stays unmapped is reported as a gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.util import getUniqueElementValueFromXmlString

from connectors.base import ApiUsage, Bookmark, Page, Rejected, StreamInfo
from connectors.errors import (
    FatalSourceError,
    HttpFailure,
    MissingObjectError,
    QuotaGuardError,
    SourceErrors,
    classified,
    parse_retry_after,
)
from connectors.http import TrustedSession
from connectors.salesforce.mapping import SOURCE, MappingError, OrgFields
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.streams import FIELD_MAP_SETTING, STREAMS, SObjectStream
from connectors.secrets import MissingSecretError

ERRORS = SourceErrors(
    SOURCE,
    ca_setting="OKR_SYNC_SALESFORCE_CA_BUNDLE",
    auth_hint="check OKR_SYNC_SALESFORCE_CLIENT_ID and OKR_SYNC_SALESFORCE_CLIENT_SECRET",
    refused=frozenset({401}),  # a 403 is a used-up quota or a missing permission
)


def _answer(exc: Exception, session: TrustedSession) -> HttpFailure | None:
    """simple-salesforce's error as an HTTP answer; its Retry-After is kept by the session."""
    if not isinstance(exc, SalesforceError):
        return None
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        detail = f"{content[0].get('errorCode')}: {content[0].get('message')}"
    else:
        detail = str(content)[:200]
    return HttpFailure(exc.status, detail, session.last_retry_after)


def _login(session: TrustedSession, settings: SalesforceSettings) -> dict[str, Any]:
    if not settings.login_url:
        raise FatalSourceError(
            SOURCE,
            "OKR_SYNC_SALESFORCE_LOGIN_URL is not set; set it to the org's My Domain URL "
            "(https://yourdomain.my.salesforce.com, Setup > My Domain): login.salesforce.com "
            "refuses the client-credentials flow",
        )
    try:
        secret = settings.secret()
    except MissingSecretError as exc:
        raise FatalSourceError(SOURCE, f"{exc}; set OKR_SYNC_SALESFORCE_CLIENT_SECRET") from None
    url = settings.login_url.rstrip("/") + "/services/oauth2/token"
    action = f"login at {settings.login_url}"
    with classified(ERRORS, action):
        response = session.post(
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": secret,
            },
            timeout=settings.timeout,
        )
        if response.status_code != 200:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            failure = HttpFailure(response.status_code, _oauth_error(response), retry_after)
            raise ERRORS.for_status(action, failure, refused={400, 401})  # OAuth refuses with 400
        token: dict[str, Any] = response.json()
    return token


def _oauth_error(response: requests.Response) -> str:
    """The reason in an OAuth error body (a dict) or a REST error body (a list)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or f"HTTP {response.status_code}"
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict):
        return response.reason or f"HTTP {response.status_code}"
    return str(
        body.get("error_description") or body.get("error") or body.get("message") or response.reason
    )


def _xml_value(response: requests.Response, element: str, action: str) -> str | None:
    """The text of a SOAP answer's one ``element``; a body that is not XML is unreadable."""
    try:
        return getUniqueElementValueFromXmlString(response.content, element)
    except ExpatError:
        raise ERRORS.unreadable(action, "not XML") from None


_GET_USER_INFO = """<?xml version="1.0" encoding="utf-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:urn="urn:partner.soap.sforce.com">
<soapenv:Header><urn:SessionHeader><urn:sessionId>{session}</urn:sessionId></urn:SessionHeader>
</soapenv:Header>
<soapenv:Body><urn:getUserInfo/></soapenv:Body>
</soapenv:Envelope>"""


class SalesforceReader:
    """Reads SObject streams page by page; the whole result is never held in memory."""

    def __init__(self, settings: SalesforceSettings) -> None:
        self.settings = settings
        self.usage = ApiUsage()
        self.session = TrustedSession(str(settings.ca_bundle) if settings.ca_bundle else None)
        self.session.hooks["response"].append(self._count)
        self.client = self._login()
        self._objects: frozenset[str] | None = None
        self._fields: dict[str, frozenset[str]] = {}
        self._org: OrgFields | None = None

    def _count(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self.usage.requests += 1
        limit = response.headers.get("Sforce-Limit-Info", "")
        if limit.startswith("api-usage="):
            self.usage.quota = f"{limit.removeprefix('api-usage=')} daily API calls used"

    def _login(self) -> Salesforce:
        token = _login(self.session, self.settings)
        return Salesforce(
            instance_url=token["instance_url"],
            session_id=token["access_token"],
            session=self.session,
            version=self.settings.api_version,
            parse_float=Decimal,
            object_pairs_hook=dict,
        )

    def _call(self, action: str, request: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """One API call; a session that expired mid-run is renewed once, then retried."""
        answer = partial(_answer, session=self.session)
        try:
            with classified(ERRORS, action, answer):
                return request()
        except FatalSourceError as exc:
            if exc.status != 401:
                raise
        self.client = self._login()  # a refused login raises its own clear error
        with classified(ERRORS, action, answer):
            return request()

    def objects(self) -> frozenset[str]:
        """The org's object names, from the global describe (asked once per reader)."""
        if self._objects is None:
            answer = self._describe("describe the org's objects", "sobjects")
            self._objects = frozenset(str(o["name"]) for o in answer.get("sobjects", []))
        return self._objects

    def fields(self, sobject: str) -> frozenset[str]:
        """The object's field names, from its describe (asked once per reader and object)."""
        if sobject not in self._fields:
            answer = self._describe(f"describe {sobject}", f"sobjects/{sobject}/describe")
            self._fields[sobject] = frozenset(str(f["name"]) for f in answer.get("fields", []))
        return self._fields[sobject]

    def _describe(self, action: str, path: str) -> dict[str, Any]:
        timeout = self.settings.timeout
        return self._call(action, lambda: self.client.restful(path, timeout=timeout) or {})

    def org(self) -> OrgFields:
        """The mapped fields, and the company currency when the org has only one.

        Multi-currency is detected (the ``CurrencyType`` object, or ``CurrencyIsoCode`` on
        Opportunity), never assumed; a single-currency org's amounts are in its company
        currency, which getUserInfo gives as ``orgDefaultCurrencyIsoCode``.
        """
        if self._org is None:
            multi = "CurrencyType" in self.objects() or (
                "Opportunity" in self.objects() and "CurrencyIsoCode" in self.fields("Opportunity")
            )
            currency = None if multi else self._company_currency()
            self._org = OrgFields(self.settings.field_map, currency)
        return self._org

    def _company_currency(self) -> str:
        """A single-currency org's currency, from the SOAP API's getUserInfo (REST has none)."""
        url = f"https://{self.client.sf_instance}/services/Soap/u/{self.settings.api_version}"
        action = "read the org's currency (getUserInfo)"

        def ask() -> dict[str, Any]:
            response = self.session.post(
                url,
                data=_GET_USER_INFO.format(session=escape(self.client.session_id)),
                headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": "getUserInfo"},
                timeout=self.settings.timeout,
            )
            if response.status_code != 200:  # a SOAP fault comes with 500, whatever it is
                fault = _xml_value(response, "faultstring", action)
                expired = "INVALID_SESSION_ID" in str(fault)  # log in again, as for REST
                status = 401 if expired else response.status_code
                raise ERRORS.for_status(action, HttpFailure(status, fault or response.reason))
            return {"currency": _xml_value(response, "orgDefaultCurrencyIsoCode", action)}

        currency = self._call(action, ask)["currency"]
        if not currency:
            raise FatalSourceError(
                SOURCE, f"{action}: the org has one currency but getUserInfo names none"
            )
        return str(currency)

    def _readable(self, sobject: SObjectStream) -> frozenset[str]:
        """The object's fields, once it is known to exist and every field the settings map
        with it (a default the org lacks, such as Industry, is a gap, not an error)."""
        name = sobject.name
        if name not in self.objects():
            comes_with = f"; it comes with {sobject.requires}" if sobject.requires else ""
            raise MissingObjectError(
                SOURCE, f"{name} skipped: the org has no {name} object{comes_with}"
            )
        existing = self.fields(name)
        field_map = self.settings.field_map
        for mapped, field in sobject.mapped_fields(field_map):
            if field not in existing and mapped.key in field_map.model_fields_set:
                raise FatalSourceError(
                    SOURCE,
                    f"{FIELD_MAP_SETTING} maps {mapped.key} to {name}.{field}, which the org's "
                    f"{name} describe does not list; check the field's API name (a custom "
                    "field ends in __c) and that the integration user may read it",
                )
        return existing

    def soql(self, stream: StreamInfo, since: Bookmark | None, until: datetime | None) -> str:
        """SELECT … ORDER BY SystemModstamp, Id, from ``since`` on, before ``until``.

        Only the fields the org's describe lists are selected. The lower bound is
        inclusive, or, when the bookmark names the last Id read at its time, the
        (SystemModstamp, Id) keyset: a block of records sharing one timestamp is resumed
        inside, never re-read from its start nor skipped.
        """
        sobject = STREAMS[stream.name]
        field = stream.cursor_field
        selected = sobject.select_fields(self.settings.field_map, self._readable(sobject))
        query = format_soql("SELECT {:literal} FROM {:literal}", ", ".join(selected), stream.name)
        conditions = []
        if since is not None and since.last_id is not None:
            conditions.append(
                format_soql(
                    "({:literal} > {} OR ({:literal} = {} AND Id > {}))",
                    field,
                    since.at,
                    field,
                    since.at,
                    since.last_id,
                )
            )
        elif since is not None:
            conditions.append(format_soql("{:literal} >= {}", field, since.at))
        if until is not None:
            conditions.append(format_soql("{:literal} < {}", field, until))
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        return query + format_soql(" ORDER BY {:literal}, Id", field)

    def read(
        self, stream: StreamInfo, since: Bookmark | None, until: datetime | None = None
    ) -> Iterator[Page]:
        sobject = STREAMS[stream.name]
        soql = self.soql(stream, since, until)
        org = self.org()
        gaps = tuple(sobject.gaps(self.settings.field_map, self.fields(stream.name)))
        for result in self._results(stream, soql, include_deleted=sobject.deletable):
            page = Page(rows=[], bookmark=None, total=result.get("totalSize"), gaps=gaps)
            gaps = ()  # said once, with the first page
            for record in result["records"]:
                try:
                    row = sobject.mapper(record, org)
                except MappingError as exc:
                    reason = f"mapping: {exc}"
                    page.rejected.append(Rejected(SOURCE, record.get("Id"), record, [reason]))
                    continue
                page.rows.append(row)
                page.bookmark = Bookmark(row["source_modified_at"], last_id=record.get("Id"))
            yield page

    def ids(self, stream: StreamInfo) -> Iterator[list[str]]:
        """Every live record's id (``query``, not ``queryAll``: deleted ones are left out).

        An object the org lacks has none."""
        sobject = STREAMS[stream.name]
        if stream.name not in self.objects():
            return
        key = sobject.id_field
        soql = format_soql("SELECT {:literal} FROM {:literal}", key, stream.name)
        for result in self._results(stream, soql + format_soql(" ORDER BY {:literal}", key)):
            yield [str(r[key]) for r in result["records"] if r.get(key)]

    def _results(
        self, stream: StreamInfo, soql: str, *, include_deleted: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Each page of a query's result, following ``nextRecordsUrl`` within the quota."""
        timeout = self.settings.timeout
        result = self._call(
            f"query {stream.name}",
            lambda: self.client.query(soql, include_deleted=include_deleted, timeout=timeout),
        )
        fetched: str | None = None  # the URL of the page in hand
        while True:
            yield result
            if result.get("done", True):
                return
            next_url = result["nextRecordsUrl"]
            if next_url == fetched:  # a page that links to itself would be read forever
                raise FatalSourceError(
                    SOURCE, f"query {stream.name}: paging went nowhere ({next_url} repeats)"
                )
            self._guard_quota(stream)
            result = self._call(
                f"query {stream.name} (next page)",
                partial(self.client.query_more, next_url, identifier_is_url=True, timeout=timeout),
            )
            fetched = next_url

    def _guard_quota(self, stream: StreamInfo) -> None:
        """Stop before the org's daily API quota runs out (from Sforce-Limit-Info)."""
        usage = self.client.api_usage.get("api-usage")
        if usage is None or not usage.total:
            return
        if usage.used >= self.settings.quota_stop_fraction * usage.total:
            raise QuotaGuardError(
                SOURCE,
                f"query {stream.name} stopped: {usage.used}/{usage.total} daily API calls used, "
                f"at or past the {self.settings.quota_stop_fraction:.0%} guard",
            )

    def close(self) -> None:
        self.session.close()
