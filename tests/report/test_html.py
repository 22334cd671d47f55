"""The HTML report: structure, self-containment, escaping, and a look at it in a real browser."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.gate.wording import config_label
from pytest_neuronperf.report.results_file import as_measurements, measurement_label
from pytest_neuronperf.spec import fields

pytest.importorskip("matplotlib")

from pytest_neuronperf.report.html import (
    CURRENT_COLOUR,
    ReportDependencyError,
    html_report,
    require_matplotlib,
    write_html,
)
from tests.report.reports import report_of

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)


@pytest.fixture(scope="module")
def report_html() -> str:
    import json

    from tests.report.conftest import RESULTS

    return html_report(json.loads(RESULTS.read_text(encoding="utf-8")))


def test_every_test_configuration_and_verdict_is_there(report_html: str, results_doc: dict[str, Any]) -> None:
    text = html.unescape(re.sub(r"<svg.*?</svg>", "", report_html, flags=re.S))
    for m in as_measurements(results_doc):
        assert measurement_label(m) in text
        for report, outcome in zip(m.reports, m.outcomes, strict=True):
            assert config_label(report) in text
            assert outcome["config_key"] in text
    for word in ("✗ fail", "✓ pass", "? inconclusive", "○ no baseline", "» skipped"):
        assert word in text
    assert "1 of 8 configurations regressed." in text
    assert "regressed (fail)" in text and "without baseline" in text
    # The reasons behind the verdicts are spelled out, not only coloured.
    assert "throughput 5405/s vs baseline 7207/s (-25.0%" in text
    assert "n_models=4 needs 4 cores, 2 available" in text


def test_it_is_self_contained(report_html: str) -> None:
    assert not EXTERNAL.search(report_html)
    assert "http://" not in report_html and "https://" not in report_html
    assert "<link" not in report_html and "<script" not in report_html
    assert report_html.count("<style>") == 1


def test_plots_are_inline_svg_with_unique_ids(report_html: str) -> None:
    svgs = re.findall(r"<svg\b.*?</svg>", report_html, flags=re.S)
    # Per measurement: throughput bars and timeline; a CDF per finished configuration (7 of 8).
    assert len(svgs) == 4 * 2 + 7
    assert "<?xml" not in report_html and "<!DOCTYPE svg" not in report_html
    ids = re.findall(r'\bid="([^"]+)"', report_html)
    assert len(ids) == len(set(ids))
    for ref in set(re.findall(r'href="#([^"]+)"', report_html)) | set(re.findall(r"url\(#([^)]+)\)", report_html)):
        assert ref in ids
    assert "this run" in report_html and "baseline (" in report_html


def test_text_is_escaped(report_html: str) -> None:
    assert "test_conv[&lt;fp16&gt;|fast]" in report_html
    assert "<fp16>" not in report_html


def test_plain_benchmark_reports(tmp_path: Path) -> None:
    report = report_of(model_name="<b>mlp</b>", device_type="cpu", workers_per_model=2, throughput_avg=900.0,
                       latency_ms_p50=1.1, latency_ms_p99=2.5,
                       latency_cdf_ms=[[p, 1.0 + p / 50] for p in fields.CDF_PERCENTILES],
                       throughput_timeline=[[[0.25, 880.0], [0.75, 920.0]]])
    target = tmp_path / "deep" / "report.html"
    assert write_html([report], target) == str(target)
    text = target.read_text(encoding="utf-8")
    assert "&lt;b&gt;mlp&lt;/b&gt;" in text and "<b>mlp</b>" not in text
    assert "· measured" in text and text.count("<svg") == 3


def test_write_html_is_a_lazy_package_export() -> None:
    import pytest_neuronperf

    assert pytest_neuronperf.write_html is write_html
    assert "write_html" in pytest_neuronperf.__all__


def test_missing_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(ReportDependencyError, match=re.escape('pip install "pytest-neuronperf[report]"')):
        require_matplotlib()
    with pytest.raises(ImportError, match="matplotlib"):
        html_report([])


def test_plugin_import_does_not_load_matplotlib() -> None:
    code = ("import sys, pytest_neuronperf.plugin, pytest_neuronperf.report.html, pytest_neuronperf.cli; "
            "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))")
    out = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- a real browser -------------------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    browser = _chromium()
    assert browser is not None
    profile = tmp_path / "profile"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_a_browser(tmp_path: Path, results_doc: dict[str, Any]) -> None:
    import numpy as np
    from matplotlib.image import imread

    page = tmp_path / "report.html"
    write_html(results_doc, page)
    url = page.resolve().as_uri()

    dom = _browser(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "1 of 8 configurations regressed." in dom.stdout
    assert len(re.findall(r"<svg\b", dom.stdout)) == 15
    assert "tests/perf/test_new.py::test_new_model" in dom.stdout

    png = tmp_path / "shot.png"
    shot = _browser(tmp_path, f"--screenshot={png}", "--window-size=1200,2000", "--hide-scrollbars", url)
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    pixels = imread(str(png))[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert float(pixels.std()) > 0.05, "the screenshot is blank"
    # The plots drew: many pixels carry the colour of this run's series.
    blue = np.array([int(CURRENT_COLOUR[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    assert int((np.abs(pixels - blue).max(axis=-1) < 0.04).sum()) > 2000
