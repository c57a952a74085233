"""``okr-sync lint``: check the OKR file, and with ``--store`` its key results against the
mirror, without touching any source."""

from __future__ import annotations

from rich.text import Text

from okr_sync.cli.console import err, fail, out
from okr_sync.cli.options import OkrFileOption, StoreOption, okr_file_or_default, open_store
from okr_targets.config import ConfigError, lint


def lint_command(okr_file: OkrFileOption = None, store: StoreOption = None) -> None:
    """Check the OKR file: structure, metrics, and that every key result is SMART; with
    --store, also that every filter value (owner, team, segment, channel, source…) matches
    something in the mirror and each metric can measure the data there."""
    from transforms.catalog import load  # the metrics: not for --help
    from transforms.check import mirror_findings

    path = okr_file_or_default(okr_file)
    try:
        config, catalog = load(path)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    findings = lint(config)
    if store is not None:
        opened = open_store(store)
        try:
            with opened.session() as session:
                findings += mirror_findings(session, config, catalog)
        finally:
            opened.dispose()
    for finding in findings:
        err.print(Text(str(finding), style="yellow"), highlight=False, soft_wrap=True)
    if findings:
        raise fail(f"{len(findings)} problem(s) in {path}")
    count = sum(1 for _ in config.key_results())
    checked = f", checked against {opened.display_url}" if store is not None else ""
    out.print(
        f"{path}: {len(config.spec.objectives)} objectives, {count} key results, all SMART{checked}"
    )
