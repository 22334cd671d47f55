"""The compile process's messages and the parent's dispatch of them (no compile process)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from pytest_neuronperf import model_index
from pytest_neuronperf.compile import messages
from pytest_neuronperf.compile.messages import Done, End, Failed, Fatal, Interrupted, Job, Spec, Started
from pytest_neuronperf.compile.parent import _Compilation


def _compilation(tmp_path: Path) -> _Compilation:
    jobs = tuple(Job(index=i, batch_size=bs, pipeline_size=1, inputs=()) for i, bs in enumerate((1, 2)))
    spec = Spec(model=None, fingerprint=None, model_name="tiny", models_dir=str(tmp_path), jobs=jobs,
                compiler_args=None, compile_fn=None, recompile=False)
    return _Compilation(spec, str(tmp_path / "tiny.json"))


def test_every_message_has_its_own_name_and_a_handler(tmp_path: Path) -> None:
    compilation = _compilation(tmp_path)
    all_messages = [Started(0, "a.pt"), Done(0, {}), Failed(0, {"error": "E"}), Interrupted(None),
                    Fatal("ValueError", "bad", "tb", import_error=False), End()]
    names = [m.name for m in all_messages]
    assert len(set(names)) == len(names)
    for m in all_messages:
        assert isinstance(m, messages.ChildMessage)
        assert callable(getattr(compilation, f"child_{m.name}"))
        assert pickle.loads(pickle.dumps(m)) == m


def test_reports_are_recorded_and_track_the_job_in_progress(tmp_path: Path) -> None:
    compilation = _compilation(tmp_path)
    compilation._dispatch(Started(0, str(tmp_path / "a.pt")))
    assert compilation.current == 0 and compilation.artifacts == {0: str(tmp_path / "a.pt")}
    compilation._dispatch(Done(0, {"filename": str(tmp_path / "a.pt"), "compile_s": 1.5}))
    assert compilation.current is None
    compilation._dispatch(Started(1, str(tmp_path / "b.pt")))
    compilation._dispatch(Failed(1, {"filename": str(tmp_path / "b.pt"), "compile_s": 0.1, "error": "E: no"}))
    compilation._dispatch(End())
    assert compilation.current is None and not compilation.interrupted
    index = model_index.load(compilation.index_path)
    assert [(c["batch_size"], c["status"]) for c in index["model_configs"]] == [(1, "finished"), (2, "error")]
    assert index["model_configs"][1]["error"] == "E: no"


def test_an_interrupt_report_marks_the_run_interrupted(tmp_path: Path) -> None:
    compilation = _compilation(tmp_path)
    compilation._dispatch(Started(0, "a.pt"))
    compilation._dispatch(Interrupted(0))
    assert compilation.interrupted and compilation.current is None


@pytest.mark.parametrize("message", [("done", 0, {}), "end", Job(0, 1, 1, ())], ids=["old tuple", "str", "job"])
def test_an_unknown_message_is_an_error_naming_it(tmp_path: Path, message: object) -> None:
    with pytest.raises(RuntimeError, match=r"^compile: the compile process sent an unknown message ") as info:
        _compilation(tmp_path)._dispatch(message)
    assert repr(message)[:10] in str(info.value)


def test_a_fatal_import_error_names_its_type_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pytest_neuronperf")
    with pytest.raises(ImportError) as info:
        _compilation(tmp_path)._dispatch(Fatal("ImportError", "compile needs torch-neuronx", "the tb",
                                               import_error=True))
    assert type(info.value) is ImportError and str(info.value) == "compile needs torch-neuronx"
    assert "the tb" in caplog.text
    with pytest.raises(ImportError) as info:
        _compilation(tmp_path)._dispatch(Fatal("ModuleNotFoundError", "No module named 'torch'", "tb",
                                               import_error=True))
    assert str(info.value) == "ModuleNotFoundError: No module named 'torch'"


def test_any_other_fatal_error_is_a_runtime_error_with_the_child_traceback(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as info:
        _compilation(tmp_path)._dispatch(Fatal("ValueError", "bad model", "Traceback ...", import_error=False))
    assert str(info.value) == "compile: ValueError: bad model\nTraceback ..."
