from __future__ import annotations

from typing import Any

import pytest
import torch

from pytest_neuronperf.backends.cpu import CpuBackend
from pytest_neuronperf.spec.inputs import pair_inputs
from pytest_neuronperf.spec.matrix import ModelConfig, build_matrix
from pytest_neuronperf.spec.model_source import ModelSource
from tests import models


def test_single_tensor_is_wrapped() -> None:
    (mi,) = pair_inputs(torch.zeros(3, 2), None)
    assert mi.batch_size == 3 and isinstance(mi.args, tuple) and len(mi.args) == 1


def test_tuple_is_one_multi_input() -> None:
    (mi,) = pair_inputs((torch.zeros(2, 1), torch.zeros(2, 5)), [2])
    assert mi.args is not None and len(mi.args) == 2 and mi.batch_size == 2


def test_list_pairs_by_position() -> None:
    out = pair_inputs([torch.zeros(1, 2), (torch.zeros(8, 2), torch.zeros(8, 1))], [1, 8])
    assert [(m.batch_size, len(m.args or ())) for m in out] == [(1, 1), (8, 2)]


def test_mismatched_lengths_name_both() -> None:
    with pytest.raises(ValueError, match=r"got 2 input\(s\) but 3 batch size\(s\) \[1, 2, 4\]"):
        pair_inputs([torch.zeros(1), torch.zeros(2)], [1, 2, 4])


def test_dataset_is_detected() -> None:
    (mi,) = pair_inputs(models.PairDataset(3), [4])
    assert mi.is_dataset and mi.batch_size == 4


def _matrix(cpus: int, **kw: Any) -> list[tuple[int, int]]:
    mc = ModelConfig(ModelSource.factory(models.TinyMLP), 0, 1, kw.pop("pipeline_size", 1))
    m = build_matrix([mc], backend=CpuBackend(list(range(cpus))), model_name="m", multiprocess=True,
                     multiinterpreter=False, **{"n_models": None, "workers_per_model": None, **kw})
    return [(r.n_models, r.workers_per_model) for r in m.runs]


def test_default_is_four_configurations_in_the_guides_order() -> None:
    assert _matrix(16) == [(1, 1), (16, 1), (1, 2), (16, 2)]


def test_max_of_one_skips_the_max_configurations_with_a_note() -> None:
    mc = ModelConfig(ModelSource.factory(models.TinyMLP), 0, 1, 1)
    m = build_matrix([mc], backend=CpuBackend([0]), model_name="m", n_models=None, workers_per_model=None,
                     multiprocess=True, multiinterpreter=False)
    assert [(r.n_models, r.workers_per_model) for r in m.runs] == [(1, 1), (1, 2)]
    assert "skipping the n_models=MAX configurations" in m.notes[0]


def test_pipeline_mode_divides_max_and_runs_one_worker_configuration() -> None:
    assert _matrix(8, pipeline_size=2) == [(1, 2), (4, 2)]
    assert _matrix(8, pipeline_size=2, workers_per_model=[1]) == [(1, 1), (4, 1)]


def test_explicit_lists_and_max() -> None:
    assert _matrix(4, n_models=[2, "max"], workers_per_model=[3]) == [(2, 3), (4, 3)]


def test_cpu_placements_are_disjoint_and_threads_match() -> None:
    places = CpuBackend([0, 1, 2, 3, 4]).placements(2, 1)
    assert [p.cpu_affinity for p in places] == [(0, 1), (2, 3)]
    assert [p.threads for p in places] == [2, 2]
    with pytest.raises(ValueError, match=r"needs 6 cores but this process may use 5"):
        CpuBackend([0, 1, 2, 3, 4]).placements(3, 2)


def test_an_empty_dataset_is_refused_naming_inputs() -> None:
    class Empty(torch.utils.data.Dataset[torch.Tensor]):
        def __len__(self) -> int:
            return 0

        def __getitem__(self, index: int) -> torch.Tensor:
            raise IndexError(index)

    with pytest.raises(ValueError, match=r"^inputs: the Dataset is empty \(Empty has len\(\) 0\); give a Dataset"):
        pair_inputs(Empty(), None)
