"""The benchmark (``make bench``) at a tiny size, so it cannot rot: it runs end to end and
writes well-formed figures. Never a time: the machine decides those."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson

from benchmarks import bench
from tests.conftest import running_in_ci

ROOT = Path(__file__).resolve().parent.parent

SIDES = ("floor", "okr_sync_full", "dlt", "okr_sync_incremental", "okr_sync_full_small")
POSTGRESQL_SIDES = ("okr_sync_full_postgresql", "okr_sync_incremental_postgresql")


def test_benchmark_runs_and_writes_well_formed_figures(tmp_path: Path) -> None:
    out, kept = tmp_path / "bench.json", tmp_path / "kept"
    argv = ["--deals=400", "--customers=80", "--tickets=300", "--rss-base-deals=100"]
    argv.append(f"--keep={kept}")
    # As `make bench` runs it: its own process, whose Prefect server and settings
    # (PREFECT_HOME, log level) must not leak into the tests that follow.
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", *argv, f"--out={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # --keep keeps the PostgreSQL store too, and says which: dropped here
    named = re.search(r"PostgreSQL store kept: database (okr_bench_\w+)", finished.stdout)
    if named:
        bench._drop_postgres_database(bench.PG_ADMIN_DSN, named.group(1))
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-4000:]
    assert "floor" in finished.stdout  # the printed table

    results = orjson.loads(out.read_bytes())
    world = results["world"]["counts"]
    assert world["deals"] == 400
    assert world["tickets"] > 0
    assert world["ratings"] > 0
    # a fifth of the deals, customers and tickets are HubSpot's (the default share)
    hubspot = world["systems"]["hubspot"]
    assert hubspot["deals"] == 80
    assert hubspot["customers"] == 16
    assert hubspot["tickets"] > 0
    streams = results["okr_sync_full"]["streams"]
    for name in ("hubspot.owners", "hubspot.companies", "hubspot.deals", "hubspot.tickets"):
        assert streams[name]["read"] > 0, name
    skipped = results.get("postgresql_skipped")
    assert not (skipped and running_in_ci()), skipped
    for side in SIDES if skipped else SIDES + POSTGRESQL_SIDES:
        figures = results[side]
        for name in ("wall_seconds", "peak_rss_mb", "records", "records_per_s"):
            assert figures[name] > 0, (side, name)
        assert figures["emulator_cpu_seconds"] >= 0, side
    # every side read every record of the same endpoints
    assert results["floor"]["records"] == results["okr_sync_full"]["records"]
    assert results["dlt"]["records"] == results["okr_sync_full"]["records"]
    assert results["okr_sync_full"]["status"] == "complete"
    assert results["okr_sync_full"]["quarantined"] == 0
    assert sum(results["changed"].values()) > 0
    assert results["okr_sync_incremental"]["written"] > 0
    assert results["okr_sync_incremental"]["records"] < results["okr_sync_full"]["records"]
    assert results["requests_minimum"] <= results["okr_sync_full"]["requests"]
    assert results["key_results"]["sqlite"]["first"] > 0
    if not skipped:  # the same syncs from empty stores: the same records either way
        for kind in ("full", "incremental"):
            sqlite, pg = results[f"okr_sync_{kind}"], results[f"okr_sync_{kind}_postgresql"]
            assert (pg["status"], pg["records"], pg["written"]) == (
                sqlite["status"],
                sqlite["records"],
                sqlite["written"],
            ), kind
        assert results["key_results"]["postgresql"]["first"] > 0
        assert "PostgreSQL" in finished.stdout
        assert named, finished.stdout[-2000:]
    else:
        assert f"skipped: {skipped}" in finished.stdout
    assert set(results["ratios"]) == set(bench.TARGETS)
    for figure in results["ratios"].values():
        assert figure["met"] in (True, False, None)
        assert figure["value"] is None or figure["value"] >= 0

    # the kept SQLite store: where its key results' time goes (benchmarks/statements.py)
    store = f"sqlite:///{kept / 'okr-sync.db'}"
    timed = subprocess.run(
        [sys.executable, "-m", "benchmarks.statements", "key-results", "--passes=1", store],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert timed.returncode == 0, timed.stderr[-4000:]
    assert re.search(r"pass 1: [\d.]+ s .* comparing records with the stored lineage", timed.stdout)
    assert "SELECT" in timed.stdout
