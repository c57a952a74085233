"""Hostile and malformed OKR files (issue 22, cases 3, 6, 10 and part of 12) are refused
quickly with one ``error:`` line naming the file and the line: aliases, duplicate keys,
non-finite numbers, booleans as numbers, values wider than the store's columns, bytes that
are not UTF-8, years a date cannot hold and cascades too deep to walk."""

from __future__ import annotations

import resource
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from okr_sync.cli import app
from okr_targets.config import MAX_CASCADE_DEPTH, ConfigError, KeyResultSpec, load_okrs
from okr_targets.models import KeyResult
from okr_targets.periods import Calendar, Period

# Line numbers below are counted by hand in this text.
GOOD = """\
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
        baseline: 0
        target: 10
        weight: 1
        unit: customers
"""
TARGET_LINE, BASELINE_LINE, WEIGHT_LINE = 12, 11, 13


def lint(tmp_path: Path, text: str | bytes) -> tuple[Path, list[str]]:
    """``okr-sync lint`` on ``text``: the file and the lines it wrote to stderr; it must fail
    with exactly one ``error:`` line and no traceback."""
    path = tmp_path / "okrs.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = CliRunner().invoke(app, ["lint", "--okr-file", str(path)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}:"), lines
    return path, lines


def refused(tmp_path: Path, text: str | bytes, line: int, *fragments: str) -> str:
    path, (error,) = lint(tmp_path, text)
    assert error.startswith(f"error: {path}:{line}: "), error
    for fragment in fragments:
        assert fragment in error, error
    with pytest.raises(ConfigError):  # the loader every command uses refuses it too
        load_okrs(path)
    return error


def test_the_good_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "okrs.yaml"
    path.write_text(GOOD)
    result = CliRunner().invoke(app, ["lint", "--okr-file", str(path)])
    assert result.exit_code == 0, result.output
    assert "all SMART" in result.stdout


# --- 3: billion laughs ---------------------------------------------------------------

LAUGHS = "\n".join(
    [
        "company: Acme",
        "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]",
        *(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)),
        "objectives: *l9",  # 10**10 lols once expanded
        "",
    ]
)


def _one_gigabyte() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_billion_laughs_is_refused_before_anything_expands(tmp_path: Path) -> None:
    """In a child held to 1 GB of address space, so a regression fails fast (MemoryError)
    instead of eating the machine's memory."""
    path = tmp_path / "okrs.yaml"
    path.write_text(LAUGHS)
    assert len(LAUGHS) < 1024
    done = subprocess.run(
        [sys.executable, "-m", "okr_sync.cli", "lint", "--okr-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_one_gigabyte,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"error: {path}:3: YAML aliases such as `*l0` are not accepted; "
        "fix: write the value out in full"
    ]


def test_a_single_alias_is_refused_too(tmp_path: Path) -> None:
    text = GOOD.replace("owner: ceo@acme.example", "owner: &boss ceo@acme.example")
    text += "  - id: team\n    title: T\n    parent: top\n    owner: *boss\n"
    refused(tmp_path, text, 18, "`*boss`", "not accepted")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    padding = "# padding\n" * (1 << 17)  # 1.25 MiB of comments
    path, (error,) = lint(tmp_path, GOOD + padding)
    assert error.startswith(f"error: {path}: the OKR file is larger than 1048576 bytes")


def test_yaml_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    text = "company: Acme\nobjectives: " + "[" * 5000 + "]" * 5000 + "\n"
    _path, (error,) = lint(tmp_path, text)
    assert "nested too deeply" in error


# --- 6: infinity and NaN ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("target: 10", "target: .inf", TARGET_LINE),
        ("target: 10", "target: -.Inf", TARGET_LINE),
        ("baseline: 0", "baseline: .nan", BASELINE_LINE),
        ("weight: 1", "weight: .inf", WEIGHT_LINE),
        ("target: 10", "target: 1.0e+999", TARGET_LINE),  # overflows to inf
        ("weight: 1", "weight: .NaN", WEIGHT_LINE),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path: Path, old: str, new: str, line: int) -> None:
    refused(tmp_path, GOOD.replace(old, new), line, "not a finite number")


def test_non_finite_fx_rate_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("company: Acme\n", "company: Acme\nmoney:\n  currency: USD\n")
    text = text.replace("objectives:", "  rates: {EUR: .inf}\nobjectives:")
    refused(tmp_path, text, 4, ".inf is not a finite number")


def test_non_finite_metric_parameter_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "metric: new_customers_won", "metric: new_customers_won\n        params: {min_amount: .nan}"
    )
    refused(tmp_path, text, 11, ".nan is not a finite number")


@pytest.mark.parametrize("value", ["inf", "nan", "Infinity"])
def test_non_finite_numbers_as_text_are_refused(tmp_path: Path, value: str) -> None:
    refused(tmp_path, GOOD.replace("target: 10", f"target: '{value}'"), TARGET_LINE, "number")


def test_the_spec_refuses_non_finite_numbers_when_built_in_code() -> None:
    for field in ("target", "baseline", "weight"):
        with pytest.raises(ValueError, match="finite"):
            KeyResultSpec.model_validate({"id": "k", "title": "K", field: float("inf")})


# --- 10: duplicate keys, booleans as numbers, values wider than the store -----------------


def test_two_key_results_lists_name_both_lines(tmp_path: Path) -> None:
    text = GOOD + "    key_results:\n      - id: kr-2\n        title: Other\n"
    refused(tmp_path, text, 15, "`key_results` is already given at line 7")


def test_duplicate_company_names_both_lines(tmp_path: Path) -> None:
    refused(tmp_path, GOOD + "company: Other\n", 15, "`company` is already given at line 1")


def test_duplicate_key_in_a_key_result(tmp_path: Path) -> None:
    text = GOOD.replace(
        "        unit: customers\n", "        unit: customers\n        target: 12\n"
    )
    refused(tmp_path, text, 15, f"`target` is already given at line {TARGET_LINE}")


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("target: 10", "target: yes", TARGET_LINE),
        ("target: 10", "target: true", TARGET_LINE),
        ("baseline: 0", "baseline: no", BASELINE_LINE),
        ("weight: 1", "weight: on", WEIGHT_LINE),
    ],
)
def test_booleans_are_not_numbers(tmp_path: Path, old: str, new: str, line: int) -> None:
    refused(tmp_path, GOOD.replace(old, new), line, "valid number", "write a plain number")


def test_boolean_fx_rate_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("company: Acme\n", "company: Acme\nmoney:\n  currency: USD\n")
    text = text.replace("objectives:", "  rates: {EUR: yes}\nobjectives:")
    refused(tmp_path, text, 4, "money.rates.EUR", "valid number")


def _width(column: str) -> int:
    """The store's column width: the one source of truth the file is checked against."""
    length = getattr(KeyResult.__table__.c[column].type, "length", None)
    assert isinstance(length, int)
    return length


@pytest.mark.parametrize(
    ("old", "field", "line", "filler"),
    [
        ("id: kr-1", "id", 8, "k"),
        ("owner: ceo@acme.example", "owner", 5, "o"),
        ("unit: customers", "unit", 14, "u"),
        ("metric: new_customers_won", "metric", 10, "m"),
    ],
)
def test_values_wider_than_the_store_are_refused(
    tmp_path: Path, old: str, field: str, line: int, filler: str
) -> None:
    width = _width(field)
    fits = tmp_path / "fits.yaml"
    fits.write_text(GOOD.replace(old, f"{field}: {filler * width}"))
    load_okrs(fits)  # the widest value the store holds is accepted
    wide = GOOD.replace(old, f"{field}: {filler * (width + 1)}")
    refused(tmp_path, wide, line, f"at most {width} characters", "shorten it")


# --- 12: not UTF-8, impossible years, deep cascades -----------------------------------------


def test_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    raw = GOOD.encode().replace(b"title: Grow", b"title: Gr\xf6w")  # Latin-1 'ö'
    offset = raw.index(b"\xf6")
    refused(tmp_path, raw, 4, f"not UTF-8 (byte {offset}: 0xf6)", "save the file as UTF-8")


@pytest.mark.parametrize("period", ["FY0001", "0001-Q1", "9999-Q4", "1899-Q4"])
def test_years_a_date_cannot_hold_are_one_line(tmp_path: Path, period: str) -> None:
    text = GOOD.replace(
        "company: Acme\n", "company: Acme\ncalendar:\n  fiscal_year_start_month: 2\n"
    )
    refused(tmp_path, text.replace("2026-Q4", period), 8, repr(period), "1900 to 2999")


def _cascade(levels: int) -> str:
    """``levels`` objectives, each the parent of the next; the last holds the key result."""
    lines = ["company: Acme", "objectives:"]
    for level in range(levels):
        lines += [f"  - id: o{level}", f"    title: Level {level}", "    owner: a@acme.example"]
        lines += ["    period: 2026-Q4"] + ([f"    parent: o{level - 1}"] if level else [])
    lines += ["    key_results:", "      - id: kr", "        title: Sell"]
    lines += ["        metric: new_customers_won", "        target: 10", ""]
    return "\n".join(lines)


def test_the_deepest_allowed_cascade_passes(tmp_path: Path) -> None:
    path = tmp_path / "okrs.yaml"
    path.write_text(_cascade(MAX_CASCADE_DEPTH + 1))  # the top and that many below it
    result = CliRunner().invoke(app, ["lint", "--okr-file", str(path)])
    assert result.exit_code == 0, result.output


def test_a_600_level_cascade_is_one_line(tmp_path: Path) -> None:
    first_too_deep = MAX_CASCADE_DEPTH + 1
    parent_line = 2 + 4 + 5 * first_too_deep  # the top has no parent line, the rest five
    refused(
        tmp_path,
        _cascade(600),
        parent_line,
        f"'o{first_too_deep}' is more than {MAX_CASCADE_DEPTH} levels below the top",
    )


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ("status: {at_risk_gap: yes}", 2),
        ("calendar: {fiscal_year_start_month: yes}", 2),
    ],
)
def test_booleans_are_not_numbers_in_settings_either(
    tmp_path: Path, section: str, line: int
) -> None:
    text = GOOD.replace("company: Acme\n", f"company: Acme\n{section}\n")
    refused(tmp_path, text, line, "valid")


def test_the_first_allowed_year_still_has_a_previous_period() -> None:
    """pct_change compares with the period before: it exists for the earliest label."""
    assert Period.parse("1900-Q1").previous() == Period(
        date(1899, 10, 1), date(1900, 1, 1), "1899-Q4"
    )
    fiscal = Calendar(fiscal_year_start_month=2).period("FY1900")
    assert (fiscal.start, fiscal.previous().start) == (date(1899, 2, 1), date(1898, 2, 1))


@pytest.mark.usefixtures("prefect_harness")
def test_sync_refuses_a_hostile_file_with_the_same_line(tmp_path: Path) -> None:
    """``sync`` (and the worker, which loads the same way) stops at the file, one line."""
    path = tmp_path / "okrs.yaml"
    path.write_text(GOOD.replace("target: 10", "target: .nan"))
    store = f"sqlite:///{tmp_path / 'okr.db'}"
    result = CliRunner().invoke(app, ["sync", "--okr-file", str(path), "--store", store])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == f"error: {path}:{TARGET_LINE}: .nan is not a finite number; " + (
        "fix: write a plain number, such as 10"
    )
