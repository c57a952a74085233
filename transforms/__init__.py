"""Records to key-result values: named metrics computed as SQL over the record mirror."""

from transforms.metrics import (
    METRICS,
    MetricError,
    MetricResult,
    RecordRef,
    check_params,
    get_metric,
    metric,
)

__all__ = [
    "METRICS",
    "MetricError",
    "MetricResult",
    "RecordRef",
    "check_params",
    "get_metric",
    "metric",
]
