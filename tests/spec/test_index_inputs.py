"""A model index from npf.compile, benchmarked with the inputs given to compile and a batch_sizes filter."""

from __future__ import annotations

import pytest
import torch

import pytest_neuronperf as npf
from pytest_neuronperf.compile.parent import compile as npf_compile
from pytest_neuronperf.spec.inputs import pair_index_inputs
from tests import kinds_models as km

ONE = {"duration": 0.2, "warmup": 2, "n_models": 1, "workers_per_model": 1, "device_type": "cpu"}
SIZES = [1, 2, 4]

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[torch.Tensor]]:
    inputs = [torch.randn(bs, 16) for bs in SIZES]
    index = npf_compile(km.Mlp, inputs, batch_sizes=SIZES, models_dir=tmp_path_factory.mktemp("models"),
                        compile_fn=km.trace_on_cpu, verbosity=0)
    return index, inputs


def test_a_filter_picks_the_inputs_of_its_batch_sizes_from_the_compile_inputs(
        compiled: tuple[str, list[torch.Tensor]]) -> None:
    index, inputs = compiled
    (r,) = npf.benchmark(index, inputs, batch_sizes=[4], **ONE)
    assert r["status"] == "finished" and r["batch_size"] == 4
    reports = npf.benchmark(index, inputs, batch_sizes=[4, 1], **ONE)
    assert sorted(r["batch_size"] for r in reports) == [1, 4]


def test_without_a_filter_every_batch_size_of_the_index_runs(compiled: tuple[str, list[torch.Tensor]]) -> None:
    index, inputs = compiled
    reports = npf.benchmark(index, inputs, **ONE)
    assert sorted(r["batch_size"] for r in reports) == SIZES and {r["status"] for r in reports} == {"finished"}


def test_an_input_of_no_selected_batch_size_is_left_out(compiled: tuple[str, list[torch.Tensor]]) -> None:
    index, inputs = compiled
    (r,) = npf.benchmark(index, [*inputs, torch.randn(8, 16)], batch_sizes=[2], **ONE)
    assert r["batch_size"] == 2


def test_a_selected_batch_size_without_an_input_is_an_error_naming_both(
        compiled: tuple[str, list[torch.Tensor]]) -> None:
    index, inputs = compiled
    with pytest.raises(ValueError, match=r"inputs: the model index .* has batch size\(s\) \[4\] selected but no "
                                         r"input has that leading dimension; the inputs' leading dimensions are "
                                         r"\[1, 2\]"):
        npf.benchmark(index, inputs[:2], batch_sizes=[1, 4], **ONE)


def test_inputs_whose_batch_is_not_the_first_dimension_pair_by_position() -> None:
    seq_first = [torch.zeros(7, 1, 16), torch.zeros(7, 8, 16)]
    paired = pair_index_inputs(seq_first, [1, 8], None, "index")
    assert [mi.batch_size for mi in paired] == [1, 8] and paired[1].args[0].shape == (7, 8, 16)
    (one,) = pair_index_inputs(torch.zeros(7, 8, 16), [8], [8], "index")
    assert one.batch_size == 8
    with pytest.raises(ValueError, match=r"inputs: index has batch size\(s\) \[1, 8\] but the inputs' leading "
                                         r"dimensions are \[7\]"):
        pair_index_inputs(seq_first[:1], [1, 8], None, "index")


def test_keyword_inputs_pair_by_their_first_tensor() -> None:
    paired = pair_index_inputs([km.token_batch(1), km.token_batch(4)], [4], [4], "index")
    assert [mi.batch_size for mi in paired] == [4] and set(paired[0].kwargs) == {"input_ids", "attention_mask"}

