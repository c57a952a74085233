"""The Salesforce emulator and its data, exercised through the real simple-salesforce
client over real HTTPS on loopback (one server for the module)."""

from __future__ import annotations

import collections
import re
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import certifi
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)
from simple_salesforce.format import format_soql

from connectors.http import TrustedSession
from connectors.salesforce.sandbox.data import (
    ROSTER,
    SCHEMA,
    SalesforceOrg,
    generate_org,
    load_org,
    write_org,
)
from connectors.salesforce.sandbox.emulator import create_app
from connectors.salesforce.sandbox.soql import parse_soql
from connectors.salesforce.timestamps import parse_sf_datetime
from connectors.sandbox.server import RunningServer, serve_tls

AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLIENT = {
    "grant_type": "client_credentials",
    "client_id": "okr-sync-sandbox",
    "client_secret": "sandbox-secret",
}
PAGED_OPPORTUNITIES = 4500


@pytest.fixture(scope="module")
def org() -> SalesforceOrg:
    return generate_org(seed=7, as_of=AS_OF, opportunities=PAGED_OPPORTUNITIES)


@pytest.fixture(scope="module")
def server(org: SalesforceOrg) -> Iterator[RunningServer]:
    with serve_tls(create_app(org)) as running:
        yield running


@pytest.fixture(scope="module")
def token(server: RunningServer) -> dict[str, Any]:
    with TrustedSession(str(server.ca_file)) as session:
        response = session.post(f"{server.base_url}/services/oauth2/token", data=CLIENT)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def sf(server: RunningServer, token: dict[str, Any]) -> Iterator[Salesforce]:
    session = TrustedSession(str(server.ca_file))
    yield Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session
    )
    session.close()


@pytest.fixture(scope="module")
def default_org() -> SalesforceOrg:
    return generate_org(seed=7, as_of=AS_OF)


def used(sf: Salesforce) -> int:
    usage = sf.api_usage["api-usage"]
    return int(usage.used)


# --- OAuth ---------------------------------------------------------------------------------


def test_token_endpoint_issues_a_bearer_token(server: RunningServer, token: dict[str, Any]) -> None:
    assert token["token_type"] == "Bearer"
    assert token["instance_url"] == server.base_url
    assert token["id"].startswith(f"{server.base_url}/id/00D")
    assert token["access_token"].startswith("00D")
    assert token["issued_at"].isdigit()
    assert token["signature"]


def test_token_endpoint_accepts_basic_auth_like_simple_salesforce(server: RunningServer) -> None:
    with TrustedSession(str(server.ca_file)) as session:
        response = session.post(
            f"{server.base_url}/services/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("okr-sync-sandbox", "sandbox-secret"),
        )
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({**CLIENT, "client_secret": "wrong"}, "invalid_client"),
        ({**CLIENT, "client_id": "someone-else"}, "invalid_client"),
        ({**CLIENT, "grant_type": "password"}, "unsupported_grant_type"),
    ],
)
def test_token_endpoint_rejects_bad_requests(
    server: RunningServer, form: dict[str, str], error: str
) -> None:
    with TrustedSession(str(server.ca_file)) as session:
        response = session.post(f"{server.base_url}/services/oauth2/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error
    if error == "invalid_client":
        assert response.json()["error_description"] == "invalid client credentials"


def test_unknown_token_is_an_expired_session(server: RunningServer, token: dict[str, Any]) -> None:
    with TrustedSession(str(server.ca_file)) as session:
        sf = Salesforce(
            instance_url=token["instance_url"], session_id="00Dbogus!token", session=session
        )
        with pytest.raises(SalesforceExpiredSession) as info:
            sf.query("SELECT Id FROM Account")
        assert info.value.status == 401
        content: Any = info.value.content
        assert content == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]
        response = session.get(
            f"{server.base_url}/services/data/v59.0/query/", params={"q": "SELECT Id FROM Account"}
        )
        assert response.status_code == 401
        assert "Sforce-Limit-Info" not in response.headers


# --- TLS -----------------------------------------------------------------------------------


def test_sandbox_ca_is_trusted_even_with_requests_ca_bundle_set(
    server: RunningServer, token: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    system_bundle = ssl.get_default_verify_paths().cafile or certifi.where()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", system_bundle)
    monkeypatch.setenv("CURL_CA_BUNDLE", system_bundle)
    with requests.Session() as plain:  # what TrustedSession fixes: the env bundle wins
        plain.verify = str(server.ca_file)
        with pytest.raises(requests.exceptions.SSLError):
            plain.post(f"{server.base_url}/services/oauth2/token", data=CLIENT)
    with TrustedSession(str(server.ca_file)) as session:
        assert (
            session.post(f"{server.base_url}/services/oauth2/token", data=CLIENT).status_code == 200
        )
        sf = Salesforce(
            instance_url=token["instance_url"], session_id=token["access_token"], session=session
        )
        assert sf.query("SELECT COUNT() FROM User")["totalSize"] == len(ROSTER)
        # An explicit per-request verify still wins, exactly as in requests.
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"{server.base_url}/services/data/", verify=system_bundle)


def test_serve_tls_port_zero_cert_dir_api_limit_and_clean_stop(tmp_path: Path) -> None:
    app = create_app(SalesforceOrg(), daily_api_limit=1)
    with serve_tls(app, port=0, cert_dir=tmp_path / "certs") as running:
        assert running.port > 0
        assert running.base_url == f"https://127.0.0.1:{running.port}"
        assert running.ca_file == tmp_path / "certs" / f"sandbox-{running.port}-ca.pem"
        assert running.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
        session = TrustedSession(str(running.ca_file))
        for host in ("127.0.0.1", "localhost"):
            url = f"https://{host}:{running.port}/services/oauth2/token"
            assert session.post(url, data=CLIENT).json()["token_type"] == "Bearer"
        token = session.post(f"{running.base_url}/services/oauth2/token", data=CLIENT).json()
        sf = Salesforce(
            instance_url=token["instance_url"], session_id=token["access_token"], session=session
        )
        assert sf.query("SELECT Id FROM Account") == {"totalSize": 0, "done": True, "records": []}
        with pytest.raises(SalesforceRefusedRequest) as info:
            sf.query("SELECT Id FROM Account")
        content: Any = info.value.content
        assert content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        started = time.monotonic()
    assert time.monotonic() - started < 5  # an idle keep-alive connection must not stall exit
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(f"{running.base_url}/services/oauth2/token", data=CLIENT, timeout=5)
    session.close()


# --- Queries -------------------------------------------------------------------------------


def test_paging_returns_every_record_exactly_once(sf: Salesforce, org: SalesforceOrg) -> None:
    first = sf.query("SELECT Id FROM Opportunity", include_deleted=True)
    assert first["totalSize"] == PAGED_OPPORTUNITIES
    assert first["done"] is False
    assert len(first["records"]) == 2000
    assert re.fullmatch(r"/services/data/v59\.0/queryAll/01g\w{15}-2000", first["nextRecordsUrl"])
    before = used(sf)
    ids = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Opportunity", include_deleted=True)]
    assert used(sf) - before == 3  # 2000 + 2000 + 500
    assert len(ids) == len(set(ids)) == PAGED_OPPORTUNITIES
    assert set(ids) == {r["Id"] for r in org.records("Opportunity", include_deleted=True)}


def test_batch_size_header_and_limit_info(sf: Salesforce, org: SalesforceOrg) -> None:
    options = {"Sforce-Query-Options": "batchSize=1500"}
    result = sf.query("SELECT Id, Name FROM Opportunity", headers=options)
    expected = len(org.records("Opportunity"))
    assert result["totalSize"] == expected
    assert len(result["records"]) == 1500
    assert result["nextRecordsUrl"].endswith("-1500")
    assert set(result["records"][0]) == {"attributes", "Id", "Name"}
    pages = 1
    while not result["done"]:
        result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True)
        pages += 1
    assert pages == -(-expected // 1500)
    tiny = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(tiny["records"]) == 200  # Salesforce's minimum batch size
    usage = sf.api_usage["api-usage"]
    assert usage.total == 15000
    assert 0 < usage.used <= usage.total


def test_query_hides_deleted_records_that_query_all_returns(
    sf: Salesforce, org: SalesforceOrg
) -> None:
    deleted = {r["Id"] for r in org.records("Opportunity", include_deleted=True) if r["IsDeleted"]}
    assert deleted
    soql = "SELECT Id, IsDeleted FROM Opportunity WHERE IsDeleted = true"
    assert sf.query_all(soql)["totalSize"] == 0
    found = sf.query_all(soql, include_deleted=True)["records"]
    assert {r["Id"] for r in found} == deleted
    live = sf.query("SELECT COUNT() FROM Opportunity")["totalSize"]
    assert live == PAGED_OPPORTUNITIES - len(deleted)


def test_where_with_a_format_soql_datetime(sf: Salesforce, org: SalesforceOrg) -> None:
    cutoff = datetime(2026, 10, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    soql = format_soql(
        "SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp >= {}", cutoff
    )
    got = {r["Id"] for r in sf.query_all_iter(soql)}
    expected = {
        r["Id"]
        for r in org.records("Opportunity")
        if parse_sf_datetime(r["SystemModstamp"]) >= cutoff
    }
    assert got == expected
    assert 0 < len(got) < len(org.records("Opportunity"))


def test_order_by_and_limit(sf: Salesforce, org: SalesforceOrg) -> None:
    result = sf.query(
        "SELECT Id, Amount, StageName FROM Opportunity "
        "WHERE IsWon = true AND CloseDate >= 2026-01-01 "
        "ORDER BY Amount DESC, Id LIMIT 5"
    )
    won = [r for r in org.records("Opportunity") if r["IsWon"] and r["CloseDate"] >= "2026-01-01"]
    won.sort(key=lambda r: (-r["Amount"], r["Id"].lower()))
    assert result["totalSize"] == 5
    assert [r["Id"] for r in result["records"]] == [r["Id"] for r in won[:5]]
    assert {r["StageName"] for r in result["records"]} == {"Closed Won"}


@pytest.mark.parametrize(
    ("soql", "code", "message"),
    [
        (  # a real org's shape: the query, a caret under the name, its row and column
            "SELECT Id, Foo FROM Account",
            "INVALID_FIELD",
            "\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\n"
            "No such column 'Foo' on entity 'Account'.",
        ),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "unexpected token"),
        (
            "SELECT Id FROM Lead",
            "INVALID_TYPE",
            "\nSELECT Id FROM Lead\n               ^\nERROR at Row:1:Column:16\n"
            "sObject type 'Lead' is not supported.",
        ),
    ],
)
def test_query_errors_have_salesforce_shape(
    sf: Salesforce, soql: str, code: str, message: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(soql)
    assert info.value.status == 400
    content: Any = info.value.content  # the decoded JSON body, typed as bytes upstream
    [error] = content
    assert set(error) == {"message", "errorCode"}
    assert error["errorCode"] == code
    assert error["message"].startswith(message)


def test_unknown_query_locator(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more("01g5g0000000zzzAAA-2000")
    content: Any = info.value.content
    assert content == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]


def test_pages_are_a_snapshot_while_the_org_changes(sf: Salesforce, org: SalesforceOrg) -> None:
    soql = "SELECT Id, Amount, SystemModstamp FROM Opportunity ORDER BY Id"
    first = sf.query(soql)
    deleted_id = first["records"][0]["Id"]  # already served on page 1
    changed_id = sorted((r["Id"] for r in org.records("Opportunity")), key=str.lower)[2500]
    everything = org.records("Opportunity", include_deleted=True)
    stamp_before = max(r["SystemModstamp"] for r in everything)
    org.upsert("Opportunity", {"Id": changed_id, "Amount": 1.23})
    org.delete("Opportunity", deleted_id)
    second_page = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)["records"]
    [unchanged] = [r for r in second_page if r["Id"] == changed_id]
    assert unchanged["Amount"] != 1.23
    fresh = {r["Id"]: r for r in sf.query_all_iter(soql)}
    assert deleted_id not in fresh
    assert fresh[changed_id]["Amount"] == 1.23
    assert fresh[changed_id]["SystemModstamp"] > stamp_before
    deleted = org.get("Opportunity", deleted_id)
    assert deleted is not None
    assert deleted["IsDeleted"] is True
    assert deleted["SystemModstamp"] > stamp_before


def test_unknown_path_is_a_salesforce_not_found(
    server: RunningServer, token: dict[str, Any]
) -> None:
    with TrustedSession(str(server.ca_file)) as session:
        response = session.get(
            f"{server.base_url}/services/data/v59.0/sobjects/Nope",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
    assert response.status_code == 404
    assert response.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]


# --- Generated data ------------------------------------------------------------------------


def test_generation_is_deterministic() -> None:
    # How fast it generates is the benchmark's to say (`make bench` prints it), not a test's.
    one = generate_org(seed=11, as_of=AS_OF)
    two = generate_org(seed=11, as_of=AS_OF)
    other = generate_org(seed=12, as_of=AS_OF)
    for sobject in SCHEMA:
        assert one.records(sobject, include_deleted=True) == two.records(
            sobject, include_deleted=True
        )
    assert other.records("User") == one.records("User")
    assert other.records("CurrencyType") == one.records("CurrencyType")
    amounts = [r["Amount"] for r in one.records("Opportunity", include_deleted=True)]
    assert amounts != [r["Amount"] for r in other.records("Opportunity", include_deleted=True)]
    later = generate_org(seed=11, as_of=AS_OF + timedelta(days=30))
    assert [u["Email"] for u in later.records("User")] == [u["Email"] for u in one.records("User")]


def test_roster_is_fixed_and_has_new_reps(default_org: SalesforceOrg) -> None:
    users = default_org.records("User")
    assert len(users) == len(ROSTER) == 16
    assert {u["Department"] for u in users} == {
        "Enterprise Sales",
        "Mid-Market Sales",
        "Sales Leadership",
    }
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+@acme-demo\.example", u["Email"]) for u in users)
    assert all(u["Id"].startswith("005") and len(u["Id"]) == 18 for u in users)
    recent = AS_OF.date() - timedelta(days=275)
    new = [u for u in users if date.fromisoformat(u["Start_Date__c"]) >= recent]
    assert 5 <= len(new) <= 6
    assert (
        sum(
            date.fromisoformat(u["Start_Date__c"]) < AS_OF.date() - timedelta(days=730)
            for u in users
        )
        >= 8
    )
    starts = {u["Id"]: u["Start_Date__c"] for u in users}
    for opp in default_org.records("Opportunity", include_deleted=True):
        assert opp["CreatedDate"][:10] >= starts[opp["OwnerId"]]


def test_deal_invariants(default_org: SalesforceOrg) -> None:
    opps = default_org.records("Opportunity", include_deleted=True)
    assert len(opps) == 2500
    assert 0 < sum(o["IsDeleted"] for o in opps) < 0.03 * len(opps)
    for o in opps:
        assert o["Id"].startswith("006")
        assert not o["IsWon"] or o["IsClosed"]
        assert o["IsWon"] == (o["StageName"] == "Closed Won")
        assert o["IsClosed"] == (o["StageName"] in ("Closed Won", "Closed Lost"))
        if o["IsClosed"]:
            assert o["Probability"] == (100.0 if o["IsWon"] else 0.0)
        else:
            assert 0 < o["Probability"] < 100
        assert o["CreatedDate"][:10] < o["CloseDate"]
        if o["IsClosed"]:
            assert o["CloseDate"] <= AS_OF.date().isoformat()
        assert o["Amount"] == round(o["Amount"], 2) > 0
        cycle = date.fromisoformat(o["CloseDate"]) - date.fromisoformat(o["CreatedDate"][:10])
        assert 10 <= cycle.days <= 121
    assert {o["CurrencyIsoCode"] for o in opps} == {"USD", "EUR", "GBP"}
    assert any(not o["IsClosed"] and o["CloseDate"] > AS_OF.date().isoformat() for o in opps)
    assert {o["Type"] for o in opps} == {"New Business", "Existing Business"}
    quarters = {
        (int(o["CloseDate"][:4]), (int(o["CloseDate"][5:7]) - 1) // 3 + 1)
        for o in opps
        if o["IsWon"]
    }
    assert {(2025, 3), (2025, 4), (2026, 1), (2026, 2), (2026, 3), (2026, 4)} <= quarters
    currencies = {c["IsoCode"]: c for c in default_org.records("CurrencyType")}
    assert currencies["USD"]["IsCorporate"]
    assert currencies["USD"]["ConversionRate"] == 1.0
    assert 0.8 < currencies["EUR"]["ConversionRate"] < 1.0


def test_customer_since_matches_first_won_deal(default_org: SalesforceOrg) -> None:
    first_won: dict[str, str] = {}
    for o in default_org.records("Opportunity"):
        if o["IsWon"]:
            first_won[o["AccountId"]] = min(first_won.get(o["AccountId"], "9999"), o["CloseDate"])
    accounts = default_org.records("Account", include_deleted=True)
    churned = 0
    for a in accounts:
        assert a["Customer_Since__c"] == first_won.get(a["Id"])
        assert (a["Type"] == "Prospect") == (a["Id"] not in first_won)
        if a["Churn_Date__c"] is not None:
            churned += 1
            assert a["Type"] == "Former Customer"
            assert a["Customer_Since__c"] < a["Churn_Date__c"] <= AS_OF.date().isoformat()
    assert 0.04 * len(first_won) <= churned <= 0.12 * len(first_won)


def test_timestamps_are_ordered_and_never_after_as_of(default_org: SalesforceOrg) -> None:
    pattern = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")
    for sobject in SCHEMA:
        for record in default_org.records(sobject, include_deleted=True):
            stamps = [record["CreatedDate"], record["LastModifiedDate"], record["SystemModstamp"]]
            assert all(pattern.fullmatch(s) for s in stamps)
            created, modified, modstamp = map(parse_sf_datetime, stamps)
            assert created <= modified <= modstamp <= AS_OF, record
            assert record["attributes"] == {
                "type": sobject,
                "url": f"/services/data/v59.0/sobjects/{sobject}/{record['Id']}",
            }


def test_the_numbers_tell_a_story(default_org: SalesforceOrg) -> None:
    rates = {c["IsoCode"]: c["ConversionRate"] for c in default_org.records("CurrencyType")}
    won_usd: dict[tuple[str, str], float] = collections.defaultdict(float)
    by_quarter: dict[str, list[float]] = collections.defaultdict(list)
    for o in default_org.records("Opportunity"):
        if o["IsWon"]:
            usd = o["Amount"] / rates[o["CurrencyIsoCode"]]
            won_usd[(o["OwnerId"], o["CloseDate"][:7])] += usd
            month = int(o["CloseDate"][5:7])
            by_quarter[f"{o['CloseDate'][:4]}Q{(month - 1) // 3 + 1}"].append(usd)
    averages = [sum(v) / len(v) for _, v in sorted(by_quarter.items()) if _ >= "2025Q3"]
    assert averages[4] > averages[0] * 1.2  # 2026Q3 vs 2025Q3
    hit: list[str] = []
    missed: list[str] = []
    for u in default_org.records("User"):
        start = date.fromisoformat(u["Start_Date__c"])
        if start < AS_OF.date() - timedelta(days=275) or u["Monthly_Quota__c"] is None:
            continue
        months = {(start + timedelta(days=d)).isoformat()[:7] for d in range(0, 122)}
        best = max((won_usd[(u["Id"], m)] for m in months), default=0.0)
        (hit if best >= u["Monthly_Quota__c"] else missed).append(u["Name"])
    assert len(hit) >= 2
    assert len(missed) >= 2


# --- Seed files and mutations --------------------------------------------------------------


def test_write_and_load_round_trip(tmp_path: Path, default_org: SalesforceOrg) -> None:
    written = write_org(default_org, tmp_path)
    assert {p.name for p in written} == {f"{name}.jsonl" for name in SCHEMA}
    (tmp_path / "Lead.jsonl").write_text("not even json\n")
    loaded = load_org(tmp_path)
    for sobject in SCHEMA:
        assert loaded.records(sobject, include_deleted=True) == default_org.records(
            sobject, include_deleted=True
        )


def test_load_accepts_records_without_attributes_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "Account.jsonl").write_text(
        '{"Id": "0015g0000000001AAA", "Name": "Acme", "CreatedDate": "2026-01-05T10:00:00Z",'
        ' "Region__c": "EMEA"}\n\n'
    )
    org = load_org(tmp_path)
    [account] = org.records("Account")
    assert account["attributes"]["type"] == "Account"
    assert account["CreatedDate"] == "2026-01-05T10:00:00.000+0000"
    assert org.records("Opportunity") == []
    query = parse_soql("SELECT Id, Amount FROM Opportunity", org.schema)
    assert query.select(org.records("Opportunity")) == []
    query = parse_soql("SELECT Region__c FROM Account WHERE Region__c = 'emea'", org.schema)
    assert [query.project(r)["Region__c"] for r in query.select(org.records("Account"))] == ["EMEA"]


@pytest.mark.parametrize(
    "bad_line",
    [
        '{"Id": "0065g0000000002AAA", "Amount": ',
        '["a list"]',
        '{"Name": "no id"}',
        '{"Id": "0065g0000000002AAA", "CloseDate": "soon"}',
    ],
)
def test_malformed_seed_line_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    good = '{"Id": "0065g0000000001AAA", "Amount": 10.5}'
    (tmp_path / "Opportunity.jsonl").write_text(f"{good}\n{bad_line}\n")
    with pytest.raises(ValueError, match=r"Opportunity\.jsonl:2: "):
        load_org(tmp_path)


def test_upsert_and_delete_bump_system_modstamp() -> None:
    org = generate_org(seed=1, as_of=AS_OF, accounts=20, opportunities=50)
    top = max(r["SystemModstamp"] for r in org.records("Opportunity", include_deleted=True))
    original = org.records("Opportunity")[0]
    updated = org.upsert(
        "Opportunity",
        {"Id": original["Id"], "StageName": "Closed Lost"},
        now=AS_OF - timedelta(days=400),
    )
    assert updated["SystemModstamp"] > top
    assert updated["LastModifiedDate"] == updated["SystemModstamp"]
    assert updated["CreatedDate"] == original["CreatedDate"]
    assert updated["StageName"] == "Closed Lost"
    assert original["SystemModstamp"] <= top  # the old dict is untouched
    assert org.get("Opportunity", original["Id"]) == updated
    created = org.upsert(
        "Opportunity", {"Name": "Brand new", "Amount": 99.0}, now=AS_OF + timedelta(hours=1)
    )
    assert re.fullmatch(r"006\w{15}", created["Id"])
    assert created["CreatedDate"] == "2026-11-27T13:00:00.000+0000"
    assert created["IsDeleted"] is False
    org.delete("Opportunity", created["Id"])
    assert created["Id"] not in {r["Id"] for r in org.records("Opportunity")}
    assert created["Id"] in {r["Id"] for r in org.records("Opportunity", include_deleted=True)}
    assert created["IsDeleted"] is False  # the dict handed out earlier is a stable snapshot
    with pytest.raises(ValueError, match="unknown Opportunity fields"):
        org.upsert("Opportunity", {"Id": created["Id"], "Amout": 1})
