"""OKR files: validation errors name the file, the line and the fix; lint checks SMART."""

from __future__ import annotations

from pathlib import Path

import pytest

from okr_sync.cli import DEMO_OKRS
from okr_targets.config import ConfigError, lint
from transforms.catalog import load

VALID = """\
company: Acme
objectives:
  - id: top
    title: Grow
    owner: ceo@acme.example
    period: 2026-Q4
    key_results:
      - id: kr-1
        title: Sell to 10 new customers
        metric: new_customers_won
        target: 10
  - id: team
    title: Team objective
    parent: top
    owner: lead@acme.example
    period: 2026-Q4
    key_results:
      - id: kr-2
        title: Deal value up 20%
        metric: pct_change
        params: {metric: avg_won_deal_value}
        target: 20
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "okrs.yaml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text))
    return str(caught.value)


def test_valid_file_loads_and_is_smart(tmp_path: Path) -> None:
    config = load(write(tmp_path, VALID))[0]
    assert [o.id for o in config.spec.objectives] == ["top", "team"]
    assert lint(config) == []


def test_demo_okrs_are_valid_and_smart() -> None:
    config = load(DEMO_OKRS)[0]
    assert lint(config) == []
    titles = {kr.title for _, kr, _ in config.key_results()}
    assert {
        "Sell to 10 new customers",
        "Increase average deal value by 20%",
        "Shorten the sales cycle by 10%",
        "New sales reps reach their monthly quota within 4 months",
    } <= titles


def test_wrong_type_names_file_line_and_fix(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("target: 10", "target: ten"))
    assert message.startswith(f"{tmp_path / 'okrs.yaml'}:11: objectives[0].key_results[0].target")
    assert "fix: write a plain number" in message


def test_unknown_key_is_named(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, VALID.replace("    owner: lead@", "    ownr: x\n    owner: lead@")
    )
    assert ":15: objectives[1].ownr" in message
    assert "check its spelling" in message


def test_unknown_metric_is_named_with_known_ones(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, VALID.replace("metric: new_customers_won", "metric: new_custmers")
    )
    assert ":10:" in message
    assert "unknown metric 'new_custmers'" in message
    assert "new_customers_won" in message


def test_bad_metric_parameter_is_named(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        VALID.replace("{metric: avg_won_deal_value}", "{metric: avg_won_deal_value, colour: red}"),
    )
    assert ":21:" in message
    assert "colour" in message


def test_unknown_parent_and_duplicate_id(tmp_path: Path) -> None:
    assert "parent 'nope' is not an objective" in error_for(
        tmp_path, VALID.replace("parent: top", "parent: nope")
    )
    message = error_for(tmp_path, VALID.replace("id: kr-2", "id: kr-1"))
    assert ":18:" in message
    assert "already used" in message


def test_bad_period_and_broken_yaml(tmp_path: Path) -> None:
    assert "2026-Q5" in error_for(
        tmp_path,
        VALID.replace(
            "period: 2026-Q4\n    key_results:\n      - id: kr-1",
            "period: 2026-Q5\n    key_results:\n      - id: kr-1",
        ),
    )
    message = error_for(tmp_path, VALID.replace("title: Grow", "title: [Grow"))
    assert "not valid YAML" in message
    assert "okrs.yaml:" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the OKR file"):
        load(tmp_path / "absent.yaml")


def test_lint_reports_each_smart_gap(tmp_path: Path) -> None:
    text = VALID.replace("        metric: new_customers_won\n        target: 10\n", "")
    text = text.replace("    parent: top\n", "").replace("    owner: lead@acme.example\n", "")
    findings = [str(f) for f in lint(load(write(tmp_path, text))[0])]
    assert any("'kr-1' is not bound to a metric" in f for f in findings)
    assert any("'kr-1' has no measurable target" in f for f in findings)
    assert any("'team' has no parent" in f for f in findings)
    assert any("'kr-2' has no owner" in f for f in findings)
    assert all(f.startswith(str(tmp_path / "okrs.yaml") + ":") for f in findings)


def test_lint_catches_direction_contradicting_target(tmp_path: Path) -> None:
    text = VALID.replace(
        "        target: 20\n", "        target: 20\n        direction: decrease\n"
    )
    findings = [str(f) for f in lint(load(write(tmp_path, text))[0])]
    assert findings == [
        f"{tmp_path / 'okrs.yaml'}:23: key result 'kr-2' says decrease "
        "but its target is above its baseline"
    ]


def test_sources_say_which_source_provides_which_entity(tmp_path: Path) -> None:
    text = VALID.replace(
        "company: Acme\n",
        "company: Acme\nsources:\n  salesforce: [customer, deal, rep, fx_rate]\n"
        "customers: {primary: salesforce, match_by: external_id}\n"
        "money: {currency: USD, rates: {EUR: 0.9}}\n",
    )
    config = load(write(tmp_path, text))[0]
    entities = {stream.entity for _, stream in config.streams()}
    assert entities == {"customer", "deal", "rep", "fx_rate"}
    assert config.primary_customer_source() == "salesforce"
    assert config.spec.money.rates == {"EUR": 0.9}
    everything = load(
        write(tmp_path, VALID.replace("company: Acme\n", "company: Acme\nsources: [salesforce]\n"))
    )[0]
    assert "ticket" in {stream.entity for _, stream in everything.streams()}


@pytest.mark.parametrize(
    ("header", "fragments"),
    [
        ("sources: {salesfarce: null}\n", (":2:", "unknown source 'salesfarce'")),
        ("sources: {salesforce: [deal, mood]}\n", (":2:", "does not provide 'mood'")),
        (
            "sources: [salesforce]\ncustomers: {primary: hubspot}\n",
            (":3:", "'hubspot' is not one of the sources"),
        ),
        ("money: {rates: {EUR: 0.9}}\n", (":2:", "rates need `currency:`")),
        ("money: {currency: usd}\n", (":2:", "money.currency")),
    ],
    ids=[
        "unknown-source",
        "unknown-entity",
        "primary-not-a-source",
        "rates-without-base",
        "lower-case-currency",
    ],
)
def test_bad_source_and_money_settings(
    tmp_path: Path, header: str, fragments: tuple[str, ...]
) -> None:
    message = error_for(tmp_path, VALID.replace("company: Acme\n", "company: Acme\n" + header))
    for fragment in fragments:
        assert fragment in message


PEOPLE = VALID.replace(
    "objectives:\n",
    "people:\n"
    "  ceo@acme.example: Casey Chief\n"
    "  lead@acme.example: {name: Lee Lead, team: Sales}\n"
    "objectives:\n",
)


def test_people_map_names_owners(tmp_path: Path) -> None:
    config = load(write(tmp_path, PEOPLE))[0]
    assert {email: (p.name, p.team) for email, p in config.spec.people.items()} == {
        "ceo@acme.example": ("Casey Chief", None),
        "lead@acme.example": ("Lee Lead", "Sales"),
    }
    assert lint(config) == []


@pytest.mark.parametrize(
    ("old", "new", "line", "fragment"),
    [
        ("ceo@acme.example: Casey", "ceo-at-acme: Casey", 3, "'ceo-at-acme' is not an e-mail"),
        ("{name: Lee Lead, team: Sales}", "{name: Lee Lead, tem: Sales}", 4, "people.lead@"),
        ("{name: Lee Lead, team: Sales}", "{team: Sales}", 4, "people.lead@acme.example.name"),
        ("Casey Chief", "''", 3, "at least 1 character"),
        ("team: Sales}", f"team: {'x' * 101}}}", 4, "at most 100 characters"),
        ("lead@acme.example: {", "CEO@acme.example: {", 4, "is already given as 'ceo@acme"),
    ],
)
def test_bad_people_entries_name_file_and_line(
    tmp_path: Path, old: str, new: str, line: int, fragment: str
) -> None:
    assert old in PEOPLE
    message = error_for(tmp_path, PEOPLE.replace(old, new))
    assert message.startswith(f"{tmp_path / 'okrs.yaml'}:{line}: "), message
    assert fragment in message, message
    assert "fix:" in message
