"""The runner end to end on CPU, with windows of a fraction of a second."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import pytest_neuronperf as npf
from pytest_neuronperf._util import machine
from pytest_neuronperf.errors import BenchmarkError
from pytest_neuronperf.runner import results as npf_results
from pytest_neuronperf.spec import fields
from tests import models

pytestmark = pytest.mark.usefixtures("no_leftover_children")
QUICK = {"duration": 0.3, "warmup": 2}


def test_default_matrix_follows_the_guide() -> None:
    reports = npf.cpu.benchmark(models.TinyMLP, torch.randn(1, 16), **QUICK)
    ncpu = len(machine.usable_cpus())
    expected = [(1, 1), (ncpu, 1), (1, 2), (ncpu, 2)] if ncpu > 1 else [(1, 1), (1, 2)]
    assert [(r["n_models"], r["workers_per_model"]) for r in reports] == expected
    for r in reports:
        assert r["status"] == "finished"
        assert set(fields.ALL_KEYS) <= set(r)
        assert r["device_type"] == "cpu" and r["batch_size"] == 1 and r["pipeline_size"] == 1
        assert r["model_name"] == "TinyMLP" and r["model_filename"] == "tests.models:TinyMLP"
        assert r["throughput_avg"] > 0 and r["throughput_peak"] >= r["throughput_avg"]
        lat = [r[k] for k in fields.LATENCY_KEYS]
        assert lat == sorted(lat) and lat[0] > 0
        assert r["total_infs"] == r["latency_samples"] * r["batch_size"]
        assert r["load_avg_ms"] > 0 and r["warmup_avg_ms"] > 0
        assert r["infer_avg_ms"] <= r["e2e_avg_ms"]
        assert r["start_dts"] and r["stop_dts"]


def test_batch_size_comes_from_the_input_and_counts_in_throughput() -> None:
    (r,) = npf.benchmark(models.TinyMLP, torch.randn(4, 16), n_models=1, workers_per_model=1, **QUICK)
    assert r["batch_size"] == 4
    assert r["total_infs"] == 4 * r["latency_samples"]
    assert r["throughput_avg"] == pytest.approx(r["total_infs"] / r["total_s"], rel=1e-3)


def test_list_of_inputs_pairs_with_batch_sizes() -> None:
    inputs = [torch.randn(1, 16), torch.randn(3, 16)]
    reports = npf.benchmark(models.TinyMLP, inputs, batch_sizes=[1, 3], n_models=1, workers_per_model=1, **QUICK)
    assert [r["batch_size"] for r in reports] == [1, 3]


def test_multi_input_tuple_is_unpacked() -> None:
    (r,) = npf.benchmark(models.TwoInputs, (torch.ones(2, 3), torch.ones(2, 3)), n_models=1,
                         workers_per_model=1, **QUICK)
    assert r["status"] == "finished" and r["batch_size"] == 2


def test_dataset_is_run_through_once_per_copy() -> None:
    ds = models.PairDataset(40)
    reports = npf.benchmark(models.TinyMLP, ds, batch_sizes=1, n_models=[1, 2], workers_per_model=2,
                            preprocess_fn=models.first_item, duration=30, warmup=1)
    assert [r["total_infs"] for r in reports] == [40, 80]
    assert all(r["total_s"] < 30 for r in reports)  # the window closes when the data runs out


def test_loop_dataset_repeats_until_the_window_closes() -> None:
    (r,) = npf.benchmark(models.TinyMLP, models.PairDataset(5), batch_sizes=1, n_models=1, workers_per_model=1,
                         preprocess_fn=models.first_item, loop_dataset=True, **QUICK)
    assert r["total_infs"] > 5


def test_pre_and_postprocess_are_timed_separately() -> None:
    (r,) = npf.benchmark(models.TinyMLP, torch.randn(1, 16), n_models=1, workers_per_model=1,
                         preprocess_fn=models.times_two, postprocess_fn=models.argmax, **QUICK)
    assert r["preprocess_avg_ms"] > 0 and r["postprocess_avg_ms"] > 0
    parts = r["preprocess_avg_ms"] + r["infer_avg_ms"] + r["postprocess_avg_ms"]
    assert parts == pytest.approx(r["e2e_avg_ms"], rel=0.01, abs=2e-4)


def test_return_timers_gives_raw_results_that_get_reports_summarises() -> None:
    results = npf.benchmark(models.TinyMLP, torch.randn(1, 16), n_models=1, workers_per_model=[1, 2],
                            return_timers=True, **QUICK)
    assert len(results) == 2
    raw = results[0].rounds[0].copies[0].stats.raw
    assert raw and raw[0].shape[1] == 4  # start, infer start, infer end, end per inference (ns)
    reports = npf.get_reports(results)
    assert reports == npf.get_reports(results)
    assert [r["workers_per_model"] for r in reports] == [1, 2]
    assert reports[0]["latency_samples"] == sum(len(a) for a in raw)


def test_rounds_split_the_duration_and_are_summarised() -> None:
    (r,) = npf.benchmark(models.TinyMLP, torch.randn(1, 16), n_models=1, workers_per_model=1, rounds=3,
                         duration=0.6, warmup=2)
    assert len(r["rounds"]) == 3
    assert sum(s["n"] for s in r["rounds"]) == r["latency_samples"]
    assert r["total_s"] == pytest.approx(0.6, rel=0.01)


def test_setup_functions_run_in_each_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("NPF_TEST_LOG", str(log))
    npf.benchmark(models.TinyMLP, torch.randn(1, 16), n_models=[1, 2], workers_per_model=1,
                  env_setup_fn=models.record_env, setup_fn=models.record_setup, **QUICK)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    setups = [x for x in lines if "id" in x]
    assert sorted((x["n_models"], x["id"]) for x in setups) == [(1, 0), (2, 0), (2, 1)]
    assert len({x["pid"] for x in setups}) == 3  # one fresh process per copy
    assert all(x["model"] == "TinyMLP" for x in setups)
    pair = [x for x in setups if x["n_models"] == 2]
    assert not set(pair[0]["affinity"]) & set(pair[1]["affinity"])  # copies pinned to disjoint cores
    assert all(x["threads"] == len(x["affinity"]) for x in setups)
    assert len([x for x in lines if "env_setup" in x]) == 3


def test_in_process_copies_accept_a_nested_class() -> None:
    class Local(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    (r,) = npf.benchmark(Local, torch.randn(1, 4), multiprocess=False, n_models=1, workers_per_model=1, **QUICK)
    assert r["status"] == "finished" and r["multiprocess"] is False


def test_multiinterpreter_runs_fresh_interpreters() -> None:
    (r,) = npf.benchmark(models.TinyMLP, torch.randn(1, 16), multiinterpreter=True, n_models=1,
                         workers_per_model=1, **QUICK)
    assert r["status"] == "finished" and r["multiinterpreter"] is True


def test_torchscript_file(tmp_path: Path) -> None:
    path = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.trace(models.TinyMLP().eval(), torch.randn(1, 16)), str(path))
    (r,) = npf.benchmark(str(path), torch.randn(1, 16), n_models=1, workers_per_model=1, **QUICK)
    assert r["model_filename"] == str(path) and r["model_name"] == "mlp"


def test_configurations_beyond_the_machine_are_skipped_with_a_reason() -> None:
    reports = npf.benchmark(models.TinyMLP, torch.randn(1, 16), n_models=[1, 512], workers_per_model=1, **QUICK)
    assert [r["status"] for r in reports] == ["skipped", "finished"]
    assert "n_models=512" in reports[0]["reason"] and "usable" in reports[0]["reason"]


def test_cost_per_hour_gives_cost_per_million() -> None:
    (r,) = npf.benchmark(models.TinyMLP, torch.randn(1, 16), n_models=1, workers_per_model=1, cost_per_hour=3.6,
                         **QUICK)
    assert r["cost_per_1m_inf"] == pytest.approx(3.6 / (r["throughput_avg"] * 3600) * 1e6, rel=1e-3)


def test_verbosity_logs_progress(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pytest_neuronperf")
    npf.benchmark(models.TinyMLP, torch.randn(1, 16), n_models=1, workers_per_model=[1, 2], verbosity=2,
                  model_name="mlp", **QUICK)
    text = caplog.text
    assert "Benchmarking 'mlp', ~1 seconds remaining." in text
    assert "Running model config:" in text
    assert "Model copy 0, worker 1 finished after" in text


def test_short_windows_warn_about_p99(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pytest_neuronperf")
    npf.benchmark(models.BusyWait, torch.randn(1, 1), n_models=1, workers_per_model=1, duration=0.05, warmup=1)
    assert "a p99 needs at least 662" in caplog.text


def test_model_exception_surfaces_with_the_copy_traceback() -> None:
    with pytest.raises(BenchmarkError) as info:
        npf.benchmark(models.RaisesInForward, torch.randn(1, 4), n_models=1, workers_per_model=1, **QUICK)
    text = str(info.value)
    assert "RuntimeError: boom in forward" in text
    assert "during warm-up" in text and "n_models=1, workers_per_model=1" in text
    assert "Traceback from the model copy" in text and "tests/models.py" in text
    assert info.value.config["n_models"] == 1


def test_exception_in_init_names_the_load_phase() -> None:
    with pytest.raises(BenchmarkError, match=r"ValueError: boom in __init__ during model load"):
        npf.benchmark(models.RaisesInInit, torch.randn(1, 4), n_models=1, workers_per_model=1, **QUICK)


def test_a_copy_that_dies_is_reported() -> None:
    with pytest.raises(BenchmarkError, match=r"model copy 0 .* exited with code 3"):
        npf.benchmark(models.ExitsInForward, torch.randn(1, 4), n_models=1, workers_per_model=1, warmup=1,
                      duration=5)


def test_a_hung_copy_is_stopped_after_the_timeout() -> None:
    with pytest.raises(BenchmarkError, match=r"did not finish running the timed window in time"):
        npf.benchmark(models.HangsInForward, torch.randn(1, 4), n_models=1, workers_per_model=1, warmup=1,
                      duration=0.2, timeout=1)


def test_worker_failure_in_one_copy_stops_the_others() -> None:
    with pytest.raises(BenchmarkError, match="exited with code 3"):
        npf.benchmark(models.ExitsInForward, torch.randn(1, 4), n_models=1, workers_per_model=2, warmup=1,
                      duration=30)


def _raw_round(latencies_ns: list[int], window_ns: int = 100_000_000, bins: int = 5,
               warmup: tuple[int, int] = (1, 3_000_000_000)) -> npf_results.RoundResult:
    """A round of one copy whose inferences end one after another from the window's start."""
    from pytest_neuronperf.runner.protocol import CopyResult
    from pytest_neuronperf.runner.recorder import Recorder

    recorder = Recorder(0, window_ns // bins, bins, keep_raw=False)
    end = 0
    for latency in latencies_ns:
        recorder.start.append(end)
        end += latency
        recorder.end.append(end)
    stats = recorder.finish()
    copy = CopyResult(copy_index=0, cores=(0,), pid=1, load_ns=5_000_000, warmup_count=warmup[0],
                      warmup_ns=warmup[1], stats=stats, worker_counts=[len(latencies_ns)])
    return npf_results.RoundResult(0, window_ns, window_ns // bins, [copy])


def _config(rounds: list[npf_results.RoundResult]) -> npf_results.ConfigResult:
    config = {"batch_size": 1, "n_models": 1, "workers_per_model": 1, "pipeline_size": 1, "duration": 0.5}
    return npf_results.ConfigResult(config=config, status=fields.STATUS_OK, rounds=rounds)


def test_a_round_without_inferences_makes_its_configuration_an_error_not_a_traceback() -> None:
    [report] = npf.get_reports([_config([_raw_round([1_000_000] * 50), _raw_round([])])])
    assert report["status"] == fields.STATUS_ERROR
    assert report["reason"].startswith("no inference completed in the 0.1 s timed window of round 2 of 2: one "
                                       "inference took about 3 s in warm-up, longer than the window; run at "
                                       "least 60 s (duration=60")
    assert report["rounds"] is None and report["throughput_avg"] is None
    assert report["warmup_avg_ms"] == pytest.approx(3000.0)


def test_the_p99_of_several_rounds_pools_their_samples() -> None:
    # 1000 inferences of 1.2 ms, then 10 of 100 ms: the 1000th of 1010 sorted samples is 1.2 ms. The
    # geometric mean of the rounds' p99s (about 11 ms) is a value no inference took.
    fast, slow = _raw_round([1_200_000] * 1000, window_ns=2_000_000_000), _raw_round([100_000_000] * 10,
                                                                                   window_ns=2_000_000_000)
    [report] = npf.get_reports([_config([fast, slow])])
    assert [r["p99_ms"] for r in report["rounds"]] == pytest.approx([1.2, 100.0])
    assert report["latency_ms_p99"] == pytest.approx(1.2)
    assert report["latency_samples"] == 1010


def test_completions_only_in_the_last_partial_bin_still_summarise() -> None:
    # A dataset that ran out closes its window at the last completion, inside a bin of its own.
    round_ = _raw_round([55_000_000, 5_000_000], window_ns=100_000_000, bins=2)  # both end in bin 2
    round_.window_stop_ns = 60_000_000
    for c in round_.copies:
        c.exhausted = True
    [report] = npf.get_reports([_config([round_])])
    assert report["status"] == fields.STATUS_OK and report["rounds"][0]["n"] == 2
