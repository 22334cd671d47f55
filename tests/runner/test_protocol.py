"""The copy <-> orchestrator messages and the orchestrator's dispatch of them (no processes)."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import threading
from typing import Any

import pytest

from pytest_neuronperf.backends.base import Placement
from pytest_neuronperf.errors import BenchmarkError
from pytest_neuronperf.runner import protocol
from pytest_neuronperf.runner.orchestrator import CopyGroup, _Handle
from pytest_neuronperf.runner.protocol import Abort, CopyFailure, CopyResult, Done, Failed, Ready, ReadyInfo, Start
from pytest_neuronperf.runner.recorder import StreamStats
from pytest_neuronperf.runner.replica import clock

CONFIG = {"n_models": 2, "workers_per_model": 1, "batch_size": 1}


class _Backend:
    def explain_error(self, error_text: str, placement: Placement) -> str | None:
        return "the runtime ran out of memory" if "OOM" in error_text else None


def _group() -> CopyGroup:
    group = CopyGroup([], _Backend(), ctx=None)  # type: ignore[arg-type]
    group.config = dict(CONFIG)
    return group


def _handle(index: int, conn: Any = None) -> _Handle:
    return _Handle(Placement(copy_index=index, cores=(index,)), conn)


READY = Ready(ReadyInfo(pid=1, load_ns=2, warmup_count=3, warmup_ns=4))
DONE = Done(CopyResult(copy_index=0, cores=(0,), pid=1, load_ns=2, warmup_count=3, warmup_ns=4,
                       stats=StreamStats()))


def _failed(traceback: str = "Traceback ...\nRuntimeError: boom\n") -> Failed:
    return Failed(CopyFailure(copy_index=1, phase="warm-up", error_type="RuntimeError", message="boom",
                              traceback=traceback))


def test_every_message_has_its_own_name_and_survives_the_pipe() -> None:
    messages = [READY, DONE, _failed(), Start(10, 20), Abort()]
    assert [m.name for m in messages] == ["ready", "done", "failed", "start", "abort"]
    for m in messages:
        back = pickle.loads(pickle.dumps(m))
        assert type(back) is type(m) and back.name == m.name
        if m is not DONE:  # StreamStats holds numpy arrays, which do not compare to one bool
            assert back == m
    with pytest.raises(AttributeError):
        Start(1, 2).start_ns = 3  # type: ignore[misc]


def test_each_copy_message_has_a_handler() -> None:
    group = _group()
    for cls in (protocol.Ready, protocol.Done, protocol.Failed):
        assert callable(getattr(group, f"copy_{cls.name}"))


def test_the_expected_message_goes_to_its_handler() -> None:
    group = _group()
    group.dispatch(_handle(3), READY, Ready, "loading and warming up")
    group.dispatch(_handle(4), DONE, Done, "running the timed window")
    assert group.ready == {3: READY.info}
    assert group.done == {4: DONE.result}


def test_a_message_out_of_turn_is_an_error_naming_it() -> None:
    group = _group()
    with pytest.raises(BenchmarkError, match=r"^model copy 1 sent 'done' while loading and warming up$") as info:
        group.dispatch(_handle(1), DONE, Ready, "loading and warming up")
    assert info.value.config == CONFIG
    assert not group.done and not group.ready


@pytest.mark.parametrize("message", [("ready", None), "hello", Start(1, 2)], ids=["old tuple", "str", "parent's"])
def test_an_unknown_message_is_an_error_naming_it(message: object) -> None:
    with pytest.raises(BenchmarkError, match=r"model copy 2 sent an unknown message .* while running the") as info:
        _group().dispatch(_handle(2), message, Done, "running the timed window")
    assert repr(message)[:10] in str(info.value)


def test_a_failure_is_raised_whatever_message_was_due() -> None:
    for expected in (Ready, Done):
        with pytest.raises(BenchmarkError) as info:
            _group().dispatch(_handle(1), _failed(), expected, "loading and warming up")
        text = str(info.value)
        assert text.startswith("model copy 1 (copy 1 on cores 1) raised RuntimeError: boom during warm-up "
                               "(configuration: n_models=2, workers_per_model=1, batch_size=1).")
        assert text.endswith("Traceback from the model copy:\nTraceback ...\nRuntimeError: boom\n")


def test_a_failure_leads_with_the_backends_explanation() -> None:
    with pytest.raises(BenchmarkError, match=r"^the runtime ran out of memory\nmodel copy 1 "):
        _group().dispatch(_handle(1), _failed("... OOM ..."), Ready, "loading and warming up")


def test_collect_reads_every_copy_over_its_connection() -> None:
    group = _group()
    ends = []
    for i in range(2):
        a, b = mp.Pipe()
        group.handles.append(_handle(i, a))
        ends.append(b)
    sender = threading.Thread(target=lambda: [b.send(READY) for b in reversed(ends)])
    sender.start()
    group.collect(Ready, clock() + 10_000_000_000, "loading and warming up")
    sender.join()
    assert sorted(group.ready) == [0, 1]
    # A result is larger than a socket buffer: it must be sent while the other end reads.
    sender = threading.Thread(target=lambda: [ends[0].send(DONE), ends[1].send(("done", DONE.result))])
    sender.start()
    try:
        # The old tuple form is no message any more.
        with pytest.raises(BenchmarkError, match=r"model copy 1 sent an unknown message \('done', "):
            group.collect(Done, clock() + 10_000_000_000, "running the timed window")
    finally:
        for conn in (h.conn for h in group.handles):
            conn.close()  # ends a send still blocked on a reader that is gone
        sender.join(10)
        for conn in ends:
            conn.close()
    assert not sender.is_alive()


def test_a_result_names_the_threads_the_model_left_running_and_defaults_to_none() -> None:
    assert DONE.result.lingering_threads == []
    result = CopyResult(copy_index=0, cores=(0,), pid=1, load_ns=2, warmup_count=3, warmup_ns=4,
                        stats=StreamStats(), lingering_threads=["poller"])
    assert pickle.loads(pickle.dumps(Done(result))).result.lingering_threads == ["poller"]
