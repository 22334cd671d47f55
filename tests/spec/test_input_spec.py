"""``--inputs``: shapes with dtypes, value ranges and names, parsed, made, and used by npf run and npf ab."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pytest_neuronperf.spec.input_spec import GRAMMAR, ArgSpec, InputSpecError, make_inputs, parse

ROOT = Path(__file__).resolve().parents[2]


def test_plain_shapes_keep_their_meaning() -> None:
    assert parse("1x64") == parse(["1x64"])
    (call,) = parse("1x64")
    assert call.args == (ArgSpec(shape=(1, 64)),)
    x = make_inputs(parse("1x64"))
    assert x.shape == (1, 64) and x.dtype == torch.float32
    pair = make_inputs(parse("1x64;1x8"))
    assert isinstance(pair, tuple) and [t.shape for t in pair] == [(1, 64), (1, 8)]
    per_batch = make_inputs(parse("1x64,4x64"))
    assert isinstance(per_batch, list) and [t.shape[0] for t in per_batch] == [1, 4]


def test_a_space_separates_arguments_like_a_semicolon() -> None:
    assert parse(["1x64", "1x8"]) == parse("1x64;1x8")


@pytest.mark.parametrize(("text", "dtype"), [
    ("2x3:int64", torch.int64), ("2x3:long", torch.int64), ("2x3:int32", torch.int32), ("2x3:bool", torch.bool),
    ("2x3:float16", torch.float16), ("2x3:fp16", torch.float16), ("2x3:bf16", torch.bfloat16),
    ("2x3:uint8", torch.uint8), ("2x3:float64", torch.float64),
])
def test_dtypes(text: str, dtype: torch.dtype) -> None:
    assert make_inputs(parse(text)).dtype == dtype


def test_integer_ranges_include_both_ends() -> None:
    ids = make_inputs(parse("64x64:int64:0-3"))
    assert set(ids.unique().tolist()) == {0, 1, 2, 3}
    assert make_inputs(parse("1x32:int64:1-1")).eq(1).all()
    assert set(make_inputs(parse("64x64:int64")).unique().tolist()) == {0, 1}  # the default range


def test_float_ranges_bound_the_values() -> None:
    x = make_inputs(parse("100x100:float32:-2-0.5"))
    assert x.min() >= -2 and x.max() < 0.5 and x.dtype == torch.float32


def test_named_arguments_make_a_dict_of_keyword_inputs() -> None:
    inputs = make_inputs(parse(["input_ids=1x32:int64:0-30000", "attention_mask=1x32:int64:1-1"]))
    assert isinstance(inputs, dict) and list(inputs) == ["input_ids", "attention_mask"]
    assert inputs["input_ids"].max() <= 30000 and inputs["attention_mask"].eq(1).all()
    per_batch = make_inputs(parse("ids=1x8:int64,ids=4x8:int64"))
    assert [d["ids"].shape[0] for d in per_batch] == [1, 4]


@pytest.mark.parametrize(("text", "problem"), [
    ("1xfoo", "expected a shape such as 1x64"),
    ("0x3", "expected a shape such as 1x64"),
    ("1x2:int7", "unknown dtype 'int7' (choose from bfloat16, bool,"),
    ("1x2:int64:3-1", "the range '3-1' has LOW above HIGH"),
    ("1x2:int64:0.5-2", "int64 values need a range of whole numbers"),
    ("1x2:uint8:-1-3", "uint8 values lie in 0-255"),
    ("1x2:bool:0-2", "bool values lie in 0-1"),
    ("1x2:int64:a-b", "expected a range LOW-HIGH such as 0-30000"),
    ("1x2:int64:0-1:9", "too many ':'"),
    ("9a=1x2", "'9a' is not a Python identifier"),
    ("a=1x2 1x3", "some arguments of one call are named and some are not"),
    ("a=1x2;a=1x3", "the argument name 'a' is given twice"),
    ("1x2,,1x3", "an empty input between ','"),
])
def test_bad_values_name_the_option_the_part_and_the_grammar(text: str, problem: str) -> None:
    with pytest.raises(InputSpecError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith("--inputs: ") and problem in message and message.endswith(GRAMMAR)
    assert repr(text) in message


def _npf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_neuronperf", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


NAMED_INPUTS = ("input_ids=2x8:int64:0-99", "attention_mask=2x8:int64:1-1")


def _run_one(tmp_path: Path, *words: str) -> dict[str, object]:
    """``npf run WORDS`` over one quick configuration; its one report."""
    out = tmp_path / "run.json"
    proc = _npf("run", *words, "--duration", "0.2", "--n-models", "1", "--workers", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (report,) = json.loads(out.read_text(encoding="utf-8"))
    assert report["status"] == "finished"
    return report  # type: ignore[no-any-return]


@pytest.mark.slow
def test_npf_run_benchmarks_distilbert_with_named_integer_inputs(tmp_path: Path) -> None:
    report = _run_one(tmp_path, "tests.kinds_models:distilbert", "--inputs", *NAMED_INPUTS)
    assert report["batch_size"] == 2


def test_npf_ab_uses_the_same_inputs_grammar() -> None:
    proc = _npf("ab", "tests.kinds_models:KeywordOnly", "tests.kinds_models:KeywordOnly", "--inputs",
                "input_ids=2x8:int64:0-99", "attention_mask=2x8:int64:1-1", "--duration", "0.3",
                "--rounds", "2", "--max-rounds", "2", "--n-models", "1", "--workers", "1")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("verdict: "), proc.stdout[-2000:]


def test_npf_run_refuses_bad_inputs_with_exit_2_before_loading_anything() -> None:
    proc = _npf("run", "tests.kinds_models:distilbert", "--inputs", "1x8:int65")
    assert proc.returncode == 2
    assert "npf run: error: --inputs: unknown dtype 'int65'" in proc.stderr and "in '1x8:int65'" in proc.stderr
    mixed = _npf("run", "tests.kinds_models:distilbert", "--inputs", "input_ids=1x8:int64", "1x8")
    assert mixed.returncode == 2
    assert "npf run: error: --inputs: some arguments of one call are named and some are not" in mixed.stderr
    assert "in 'input_ids=1x8:int64 1x8'" in mixed.stderr


def test_npf_run_takes_a_torch_export_file_and_compile_mode(tmp_path: Path) -> None:
    from tests.kinds_models import Pointwise

    path = tmp_path / "pointwise.pt2"
    torch.export.save(torch.export.export(Pointwise().eval(), (torch.randn(2, 16),)), str(path))
    out = tmp_path / "out.json"
    proc = _npf("run", str(path), "--inputs", "2x16", "--duration", "0.2", "--n-models", "1", "--workers", "1",
                "--compile-mode", "default", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (report,) = json.loads(out.read_text(encoding="utf-8"))
    assert report["status"] == "finished" and report["compile_s"] > 0
    bad = _npf("run", str(path), "--inputs", "2x16", "--compile-mode", "fast")
    assert bad.returncode == 2 and "argument --compile-mode: invalid choice: 'fast'" in bad.stderr


def test_models_written_after_the_inputs_are_still_the_models(tmp_path: Path) -> None:
    report = _run_one(tmp_path, "--inputs", *NAMED_INPUTS, "tests.kinds_models:KeywordOnly")
    assert report["model_filename"] == "tests.kinds_models:KeywordOnly"
    missing = _npf("run", "--inputs", "1x8", "2x8")
    assert missing.returncode == 2
    assert "npf run: error: MODEL: no model given; name it before --inputs" in missing.stderr
