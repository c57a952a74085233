"""okr-sync's side: one sync (full or incremental) in this process, timed from inside.

Runs the ``sync-okrs`` flow exactly as ``okr-sync sync`` does and reports its wall time,
records read, requests sent, peak RSS and the seconds spent in validation (the
:class:`~expectations.Validator` calls, timed around the real validator).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson

from benchmarks.measure import cpu_seconds, peak_rss_mb


def run(okr_file: str, store_url: str, full_refresh: bool) -> dict[str, Any]:
    import expectations
    from flows.report import RunReport
    from flows.sync import sync_okrs

    spent = [0.0]
    validate = expectations.Validator.validate

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return validate(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    expectations.Validator.validate = timed  # type: ignore[method-assign]
    started = time.perf_counter()
    state = sync_okrs(
        okr_file=okr_file, store_url=store_url, full_refresh=full_refresh, return_state=True
    )
    wall = time.perf_counter() - started
    result = state.result() if state.is_completed() else None
    if not isinstance(result, RunReport):
        raise SystemExit(f"the sync failed: {state.message}")
    report = result.to_dict()
    streams = report["streams"]
    return {
        "status": report["status"],
        "wall_seconds": wall,
        "records": sum(s["read"] for s in streams.values()),
        "written": sum(s["written"] for s in streams.values()),
        "quarantined": sum(s["quarantined"] for s in streams.values()),
        "requests": sum(s["requests"] for s in streams.values()),
        "validate_seconds": spent[0],
        "peak_rss_mb": peak_rss_mb(),
        "cpu_seconds": cpu_seconds(),
        "streams": {
            name: {key: s[key] for key in ("read", "written", "deleted", "quarantined", "requests")}
            for name, s in streams.items()
        },
        "run_id": report["run_id"],
    }


if __name__ == "__main__":
    okr_file, store_url, mode, out = sys.argv[1:5]
    result = run(okr_file, store_url, full_refresh=mode == "full")
    with open(out, "wb") as handle:
        handle.write(orjson.dumps(result))
