"""The SOQL subset: parsing, literal handling and Salesforce's error codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from simple_salesforce.format import format_soql

from connectors.salesforce.sandbox.soql import SoqlError, parse_soql
from connectors.salesforce.timestamps import format_sf_datetime, parse_sf_datetime

SCHEMA = {
    "Opportunity": {
        "Id": "id",
        "Name": "string",
        "Amount": "currency",
        "IsWon": "boolean",
        "CloseDate": "date",
        "SystemModstamp": "datetime",
    }
}


def _row(
    rid: str, name: str, amount: float | None, won: bool, close: str | None, stamp: str
) -> dict[str, Any]:
    return {
        "attributes": {"type": "Opportunity", "url": f"/x/{rid}"},
        "Id": rid,
        "Name": name,
        "Amount": amount,
        "IsWon": won,
        "CloseDate": close,
        "SystemModstamp": stamp,
    }


ROWS = [
    _row("1", "Acme - Renewal", 500.0, True, "2026-01-05", "2026-01-05T10:00:00.000+0000"),
    _row("2", "O'Neill \\ Sons\nLtd", None, False, None, "2026-01-05T09:59:59.000+0000"),
    _row("3", "beta corp", 1500.5, True, "2026-02-01", "2026-03-01T00:00:00.000+0000"),
    _row("4", "Gamma", 20.0, False, "2025-12-31", "2025-12-31T23:59:59.999+0000"),
]


def ids(soql: str) -> list[str]:
    query = parse_soql(soql, SCHEMA)
    return [query.project(row)["Id"] for row in query.select(ROWS)]


def error(soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as info:
        parse_soql(soql, SCHEMA)
    return info.value


def test_keywords_and_names_are_case_insensitive_and_projection_is_canonical() -> None:
    query = parse_soql("select id, AMOUNT from opportunity where iswon = TRUE order by id", SCHEMA)
    assert query.sobject == "Opportunity"
    rows = [query.project(r) for r in query.select(ROWS)]
    assert rows == [
        {"attributes": ROWS[0]["attributes"], "Id": "1", "Amount": 500.0},
        {"attributes": ROWS[2]["attributes"], "Id": "3", "Amount": 1500.5},
    ]


@pytest.mark.parametrize("value", ["O'Neill \\ Sons\nLtd", "Acme - Renewal"])
def test_strings_escaped_by_simple_salesforce_round_trip(value: str) -> None:
    soql = format_soql("SELECT Id FROM Opportunity WHERE Name = {}", value)
    assert ids(soql) == [row["Id"] for row in ROWS if row["Name"] == value]


def test_string_equality_ignores_case_like_salesforce() -> None:
    assert ids("SELECT Id FROM Opportunity WHERE Name = 'BETA CORP'") == ["3"]


@pytest.mark.parametrize(
    "literal",
    [
        "2026-01-05T10:00:00Z",
        "2026-01-05T10:00:00+00:00",
        "2026-01-05T10:00:00.000+0000",
        "2026-01-05T12:00:00+02:00",
        "2026-01-05T05:00:00-05:00",
    ],
)
def test_datetime_literals_compare_as_instants(literal: str) -> None:
    assert ids(f"SELECT Id FROM Opportunity WHERE SystemModstamp >= {literal} ORDER BY Id") == [
        "1",
        "3",
    ]
    assert ids(f"SELECT Id FROM Opportunity WHERE SystemModstamp = {literal}") == ["1"]


def test_format_soql_datetime_from_any_timezone() -> None:
    cutoff = datetime(2026, 1, 5, 11, 0, tzinfo=timezone(timedelta(hours=1)))  # 10:00Z
    soql = format_soql("SELECT Id FROM Opportunity WHERE SystemModstamp < {} ORDER BY Id", cutoff)
    assert soql.endswith("2026-01-05T10:00:00+00:00 ORDER BY Id")
    assert ids(soql) == ["2", "4"]


def test_date_literals_compare_as_dates_and_nulls_never_match_ranges() -> None:
    assert ids("SELECT Id FROM Opportunity WHERE CloseDate < 2026-01-05") == ["4"]
    assert ids("SELECT Id FROM Opportunity WHERE CloseDate >= 2026-01-05 ORDER BY Id") == ["1", "3"]
    assert ids("SELECT Id FROM Opportunity WHERE CloseDate = null") == ["2"]
    assert ids("SELECT Id FROM Opportunity WHERE Amount != 500 ORDER BY Id") == ["2", "3", "4"]


def test_numbers_booleans_in_not_and_parentheses() -> None:
    assert ids("SELECT Id FROM Opportunity WHERE Amount > 1e2 AND Amount <= 1500.5") == ["1", "3"]
    assert ids(format_soql("SELECT Id FROM Opportunity WHERE Id IN {}", ["3", "4"])) == ["3", "4"]
    assert ids("SELECT Id FROM Opportunity WHERE Id NOT IN ('1','2') ORDER BY Id") == ["3", "4"]
    soql = "SELECT Id FROM Opportunity WHERE (IsWon = false OR Amount > 1000) AND NOT Id = '4'"
    assert ids(soql) == ["2", "3"]


def test_order_by_nulls_and_limit() -> None:
    assert ids("SELECT Id FROM Opportunity ORDER BY Amount") == ["2", "4", "1", "3"]
    assert ids("SELECT Id FROM Opportunity ORDER BY Amount DESC") == ["3", "1", "4", "2"]
    assert ids("SELECT Id FROM Opportunity ORDER BY Amount ASC NULLS LAST LIMIT 2") == ["4", "1"]
    assert ids("SELECT Id FROM Opportunity ORDER BY IsWon DESC, Name LIMIT 3") == ["1", "3", "4"]
    assert ids("SELECT Id FROM Opportunity LIMIT 0") == []


def test_count_query() -> None:
    query = parse_soql("SELECT COUNT() FROM Opportunity WHERE IsWon = true", SCHEMA)
    assert query.count_only
    assert len(query.select(ROWS)) == 2


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT FROM Opportunity",
        "SELECT Id Opportunity",
        "SELECT Id FROM Opportunity WHERE",
        "SELECT Id FROM Opportunity WHERE Amount = 1 AND IsWon = true OR Id = '1'",
        "SELECT Id FROM Opportunity LIMIT 1.5",
        "SELECT Id FROM Opportunity WHERE Name = 'open",
        "SELECT Id FROM Opportunity WHERE Name = 'bad \\q escape'",
        "DELETE FROM Opportunity",
        "SELECT Id FROM Opportunity WHERE CloseDate > 2026-13-01",
        "SELECT Id FROM Opportunity;",
    ],
)
def test_syntax_errors_are_malformed_query(soql: str) -> None:
    assert error(soql).error_code == "MALFORMED_QUERY"


def test_unknown_object_and_field_errors_read_like_salesforce() -> None:
    exc = error("SELECT Id FROM Lead")
    assert exc.error_code == "INVALID_TYPE"
    assert exc.message.startswith("sObject type 'Lead' is not supported.")
    exc = error("SELECT Id, Foo FROM Opportunity")
    assert exc.error_code == "INVALID_FIELD"
    assert exc.message.startswith("No such column 'Foo' on entity 'Opportunity'.")
    assert error("SELECT Id FROM Opportunity ORDER BY Bar").error_code == "INVALID_FIELD"
    assert error("SELECT Id FROM Opportunity WHERE Owner.Name = 'x'").error_code == "INVALID_FIELD"


@pytest.mark.parametrize(
    "condition",
    [
        "Amount = '5'",
        "Name = 5",
        "CloseDate > 2026-01-05T00:00:00Z",
        "SystemModstamp > 2026-01-05",
        "IsWon = 'true'",
    ],
)
def test_literal_of_the_wrong_type_is_invalid_field(condition: str) -> None:
    exc = error(f"SELECT Id FROM Opportunity WHERE {condition}")
    assert exc.error_code == "INVALID_FIELD"
    assert exc.message.startswith("value of filter criterion for field")


def test_timestamps_format_and_parse() -> None:
    moment = datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)
    assert format_sf_datetime(moment) == "2026-01-05T10:00:00.123+0000"
    assert format_sf_datetime(moment.astimezone(timezone(timedelta(hours=-5)))) == (
        "2026-01-05T10:00:00.123+0000"
    )
    with pytest.raises(ValueError, match="naive"):
        format_sf_datetime(datetime(2026, 1, 5))  # noqa: DTZ001 - the point of the test
    expected = datetime(2026, 1, 5, 10, tzinfo=UTC)
    for text in (
        "2026-01-05T10:00:00.000+0000",
        "2026-01-05T10:00:00Z",
        "2026-01-05T10:00:00+00:00",
        "2026-01-05T11:00:00.000+01:00",
    ):
        parsed = parse_sf_datetime(text)
        assert parsed == expected
        assert parsed.tzinfo is UTC
    with pytest.raises(ValueError, match="not a Salesforce datetime"):
        parse_sf_datetime("2026-01-05 10:00:00")
    # the REST API's own shape (read by datetime.fromisoformat) answers as any other shape
    assert parse_sf_datetime("2026-01-05T10:00:00.123+0000") == expected + timedelta(
        milliseconds=123
    )
    with pytest.raises(ValueError, match=r"^day is out of range for month$"):
        parse_sf_datetime("2026-02-30T10:00:00.000+0000")
    for shaped in ("2026-01-05T1a:00:00.000+0000", "\uff12026-01-05T10:00:00.000+0000"):
        with pytest.raises(ValueError, match="not a Salesforce datetime"):
            parse_sf_datetime(shaped)
