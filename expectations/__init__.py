"""Great Expectations suites for canonical records, and the batch validator that applies them.

The suites are the JSON files beside this module, one per canonical entity, readable
without the code. A batch is validated as one pandas DataFrame (validating page by page
is several times slower); rows that fail any expectation are returned with the names of
the expectations they failed, so the flow can quarantine them and count them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from connectors.base import Rejected

SUITES = Path(__file__).parent


@dataclass
class Verdict:
    """A validated batch: rows fit for the mirror, and rejected rows with their failures."""

    good: list[Mapping[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def suite_names(directory: Path = SUITES) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.json"))


def _label(config: Any) -> str:
    kwargs = config.kwargs
    columns = [kwargs[key] for key in ("column", "column_A", "column_B") if key in kwargs]
    return f"{config.type}({', '.join(columns)})"


class Validator:
    """Holds one ephemeral Great Expectations context with every suite loaded from files."""

    def __init__(self, directory: Path = SUITES) -> None:
        self.directory = directory

    @cached_property
    def _context(self) -> Any:
        # Analytics would try the network; the context is ephemeral and silent.
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        return context

    @cached_property
    def _batches(self) -> Any:
        source = self._context.data_sources.add_pandas("canonical")
        return source.add_dataframe_asset("batch").add_batch_definition_whole_dataframe("whole")

    @cached_property
    def _suites(self) -> dict[str, Any]:
        import great_expectations as gx

        suites = {}
        for name in suite_names(self.directory):
            data = json.loads((self.directory / f"{name}.json").read_text(encoding="utf-8"))
            suites[name] = self._context.suites.add(gx.ExpectationSuite(**data))
        return suites

    def validate(self, entity: str, rows: Sequence[Mapping[str, Any]]) -> Verdict:
        """Split ``rows`` into good and rejected by the entity's suite (all good if none)."""
        suite = self._suites.get(entity)
        if suite is None or not rows:
            return Verdict(good=list(rows))
        import pandas as pd

        frame = pd.DataFrame.from_records(list(rows))
        result = self._batches.get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format={"result_format": "COMPLETE"}
        )
        failures: dict[int, list[str]] = {}
        for outcome in result.results:
            if outcome.success:
                continue
            indexes = outcome.result.get("unexpected_index_list")
            if indexes is None:
                # A dataset-level failure (or an expectation that broke) names no rows:
                # hold the whole batch back rather than mirror rows that were not checked.
                detail = (
                    outcome.exception_info.get("exception_message")
                    if outcome.exception_info
                    else None
                )
                label = _label(outcome.expectation_config) + (f": {detail}" if detail else "")
                indexes = range(len(rows))
            else:
                label = _label(outcome.expectation_config)
            for index in indexes:
                failures.setdefault(int(index), []).append(label)
        verdict = Verdict()
        for index, row in enumerate(rows):
            if index in failures:
                source_id = row.get("source_id")
                verdict.rejected.append(
                    Rejected(str(row.get("source")), source_id, row, failures[index])
                )
            else:
                verdict.good.append(row)
        return verdict
