from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
RESULTS = DATA / "results.json"
BASELINES = DATA / "baselines"


@pytest.fixture
def results_doc() -> dict[str, Any]:
    """A hand-made ``--npf-json`` document: one regression, one inconclusive, one skipped configuration,
    one measurement without baseline, a named measurement and a test id with characters HTML must escape."""
    doc: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
    return doc


@pytest.fixture
def baseline_dir(tmp_path: Path) -> Path:
    """A writable copy of the baselines the hand-made results were judged against."""
    target = tmp_path / "baselines"
    shutil.copytree(BASELINES, target)
    return target
