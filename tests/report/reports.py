"""Report dicts for the report tests, built as the runner writes them."""

from __future__ import annotations

from typing import Any

from pytest_neuronperf.spec import fields


def report_of(**values: Any) -> dict[str, Any]:
    """A finished single-configuration report: every field present (None unless given), ``values`` set."""
    r: dict[str, Any] = {k: None for k in fields.ALL_KEYS}
    r.update(batch_size=1, n_models=1, workers_per_model=1, pipeline_size=1, status=fields.STATUS_OK)
    r.update(values)
    return r
