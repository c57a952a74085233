"""``okr-sync lint``: check the OKR file without touching the store or any source."""

from __future__ import annotations

from okr_sync.cli.console import err, fail, out
from okr_sync.cli.options import OkrFileOption, okr_file_or_default
from okr_targets.config import ConfigError, lint
from transforms.catalog import load


def lint_command(okr_file: OkrFileOption = None) -> None:
    """Check the OKR file: structure, metrics, and that every key result is SMART."""
    path = okr_file_or_default(okr_file)
    try:
        config, _catalog = load(path)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    findings = lint(config)
    for finding in findings:
        err.print(f"[yellow]{finding}[/]", highlight=False, soft_wrap=True)
    if findings:
        raise fail(f"{len(findings)} problem(s) in {path}")
    count = sum(1 for _ in config.key_results())
    out.print(f"{path}: {len(config.spec.objectives)} objectives, {count} key results, all SMART")
