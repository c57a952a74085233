"""Key results checked against the mirror without measuring them into the store: what
``okr-sync lint --store`` reports (a filter value matching nothing, data a metric cannot
measure), the same findings measuring would give."""

from __future__ import annotations

from sqlalchemy.orm import Session

from okr_targets.config import LintFinding, OkrConfig
from transforms.catalog import MetricCatalog
from transforms.metric import MetricError
from transforms.sql import shared_results


def mirror_findings(
    session: Session, config: OkrConfig, catalog: MetricCatalog
) -> list[LintFinding]:
    """Per key result whose metric cannot give a number from the mirror, why (the metric's
    own MetricError); nothing is written."""
    findings = []
    with shared_results(session):
        for objective, spec, where in config.key_results():
            if spec.metric is None:
                continue
            _owner, label = config.resolved(objective, spec)
            try:
                catalog.find(spec.metric).run(session, config.calendar.period(label), spec.params)
            except MetricError as exc:
                findings.append(LintFinding(config.where(*where), f"key result {spec.id!r}: {exc}"))
    return findings
