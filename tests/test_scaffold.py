"""``okr-sync connectors new``: the generated package installs, is found, and its tests pass."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from okr_sync.cli import app
from tests.installing import environment, okr_sync, pip_install

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("scaffold") / "okr-sync-acme-billing"
    result = CliRunner().invoke(
        app, ["connectors", "new", "acme_billing", "--directory", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert f"{readme_command(target, 'pytest')}" in result.stdout  # the same next step
    return target


def readme_command(package: Path, tool: str) -> str:
    """The README's shell command that runs ``python -m TOOL``."""
    [line] = [
        line
        for line in (package / "README.md").read_text().splitlines()
        if f" -m {tool}" in line and not line.startswith(("`", "|"))
    ]
    return line.split("  #", 1)[0].strip()


def test_the_package_has_every_part(generated: Path) -> None:
    files = {str(path.relative_to(generated)) for path in generated.rglob("*") if path.is_file()}
    package = "okr_sync_acme_billing"
    assert files == {
        "pyproject.toml",
        "README.md",
        "tests/test_contract.py",
        "tests/test_mapping.py",
        *(
            f"{package}/{name}.py"
            for name in (
                "__init__",
                "settings",
                "streams",
                "client",
                "mapping",
                "sandbox/__init__",
                "sandbox/emulator",
                "sandbox/data",
            )
        ),
    }
    pyproject = (generated / "pyproject.toml").read_text()
    assert 'acme_billing = "okr_sync_acme_billing:connector"' in pyproject
    readme = (generated / "README.md").read_text()
    assert readme.startswith("# Acme Billing connector for okr-sync\n\n| stream |")
    assert "OKR_SYNC_ACME_BILLING_" in readme
    assert "{{" not in readme
    assert "{%" not in readme


def test_the_generated_code_is_lint_clean(generated: Path) -> None:
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run(
            [str(BIN / "ruff"), *command],
            cwd=generated,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_generated_tests_pass_as_generated(generated: Path, tmp_path: Path) -> None:
    """Installed offline into a scratch site; its own tests, run the way its README says,
    run the contract via the plugin, even when okr-sync's venv is not on PATH (a bare
    `pytest` would then be another Python's, or none)."""
    site = tmp_path / "site"
    pip_install(generated, site)
    env = environment(site)
    command = shlex.split(readme_command(generated, "pytest"))
    assert command == [str(Path(sys.executable).absolute()), "-m", "pytest"]
    result = subprocess.run(
        [*command, "-q", "-p", "no:cacheprovider", "-rA"],
        cwd=generated,
        capture_output=True,
        text=True,
        env=env | {"PATH": os.defpath},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout
    assert "test_the_connector_passes_the_contract[acme_billing]" in result.stdout
    listed = okr_sync("connectors", "list", "--format", "json", env=env, cwd=tmp_path)
    names = {item["name"]: item for item in json.loads(listed.stdout)}
    assert names["acme_billing"]["package"] == "okr-sync-acme-billing"
    assert [s["entity"] for s in names["acme_billing"]["streams"]] == ["customer", "deal"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("1billing", "'1billing' is not a connector name"),
        ("Billing", "'Billing' is not a connector name"),
        ("bill-ing", "'bill-ing' is not a connector name"),
        ("class", "'class' is not a connector name"),
    ],
)
def test_bad_names_are_refused(name: str, fragment: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["connectors", "new", name, "--directory", str(tmp_path / "x")]
    )
    assert result.exit_code == 1
    assert fragment in result.stderr
    assert not (tmp_path / "x").exists()


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["connectors", "new", "billing", "--directory", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exists and is not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_connectors_list_shows_every_built_in_connector_with_its_streams() -> None:
    table = CliRunner().invoke(app, ["connectors", "list"])
    assert table.exit_code == 0, table.output
    for text in ("salesforce", "Opportunity → deal, SystemModstamp", "sql", "files"):
        assert text in table.stdout
    listed = CliRunner().invoke(app, ["connectors", "list", "--format", "json"])
    by_name = {item["name"]: item for item in json.loads(listed.stdout)}
    assert set(by_name) >= {"salesforce", "hubspot", "zendesk", "sql", "files"}
    assert by_name["sql"]["package"] == "okr-sync"
    assert [s["name"] for s in by_name["sql"]["streams"]] == [
        "customers",
        "deals",
        "reps",
        "fx_rates",
        "tickets",
        "ratings",
        "finance_lines",
    ]
    assert all(item["error"] is None for item in by_name.values())


@pytest.fixture(scope="module")
def installed_site(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("scaffold-site") / "site"
    pip_install(generated, site)
    return site


def test_okr_sync_sandbox_serves_an_installed_connector_s_emulator(
    installed_site: Path, tmp_path: Path
) -> None:
    """Issue 24: a plugin that declares an emulator as its sandbox is served like a
    built-in one, and its printed exports reach it."""
    command = [str(BIN / "okr-sync"), "sandbox", "--source", "acme_billing", "--port", "0"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=environment(installed_site)
    )
    assert process.stdout is not None
    exports: dict[str, str] = {}
    try:
        for line in process.stdout:
            if line.startswith("Press Ctrl-C"):
                break
            if line.strip().startswith("export "):
                name, _, value = shlex.split(line.strip().removeprefix("export "))[0].partition("=")
                exports[name] = value
        base, token = (
            exports["OKR_SYNC_ACME_BILLING_BASE_URL"],
            exports["OKR_SYNC_ACME_BILLING_API_TOKEN"],
        )
        answer = requests.get(
            f"{base}/api/v1/customers/ids",
            headers={"Authorization": f"Bearer {token}"},
            verify=exports["OKR_SYNC_ACME_BILLING_CA_BUNDLE"],
            timeout=10,
        )
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        process.communicate(timeout=30)
    assert answer.status_code == 200, answer.text
    # the template's sample: customers 1 to 8
    assert sorted(int(i) for i in answer.json()["data"]) == list(range(1, 9))
    assert process.returncode == 0


def test_okr_sync_sandbox_lists_the_installed_emulators_it_can_serve(
    installed_site: Path, tmp_path: Path
) -> None:
    """A connector whose sandbox is files (no emulator) is refused in one line that names
    every source there is an emulator for, the installed one included."""
    result = okr_sync("sandbox", "--source", "files", env=environment(installed_site), cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: no sandbox to serve for 'files'; "
        "choose one of salesforce, zendesk, hubspot, acme_billing"
    ]
