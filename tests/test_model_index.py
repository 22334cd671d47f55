"""Model index files: building, filtering, moving artifacts, and reading files written by others."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_neuronperf import model_index


def artifact(folder: Path, name: str, content: bytes = b"PK-not-really") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return str(path)


@pytest.fixture
def three(tmp_path, monkeypatch):
    """An index of b1/p1 and b4/p1 (finished) and b8/p1 (error), artifacts under ./models."""
    monkeypatch.chdir(tmp_path)
    models = Path("models")
    return model_index.append(
        model_index.create(artifact(models, "m_b1_p1_aaaa.pt"), model_name="m", compile_s=1.5),
        model_index.create(artifact(models, "m_b4_p1_bbbb.pt"), model_name="m", batch_size=4, compile_s=2.0),
        model_index.create("models/m_b8_p1_cccc.pt", model_name="m", batch_size=8, status="error",
                           error="RuntimeError: out of memory"),
    )


def write_json(path: Path, data: object) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_create():
    index = model_index.create("models/net_b2_p1_x.pt", batch_size=2, compile_s=3.0)
    assert index == {
        "schema_version": 1,
        "model_name": "net_b2_p1_x",
        "model_configs": [{"filename": "models/net_b2_p1_x.pt", "batch_size": 2, "pipeline_size": 1,
                           "compile_s": 3.0, "status": "finished"}],
    }
    with pytest.raises(ValueError, match="'status' must be one of"):
        model_index.create("x.pt", status="done")
    with pytest.raises(ValueError, match="'batch_size' must be a whole number >= 1"):
        model_index.create("x.pt", batch_size=0)


def test_append_drops_duplicates_and_keeps_order(three):
    again = model_index.append(three, model_index.create("models/m_b1_p1_aaaa.pt", model_name="other"),
                               model_index.create("models/m_b1_p2_dddd.pt", pipeline_size=2))
    assert again["model_name"] == "m"
    assert [(c["batch_size"], c["pipeline_size"]) for c in again["model_configs"]] == [(1, 1), (4, 1), (8, 1), (1, 2)]
    with pytest.raises(ValueError, match="at least one"):
        model_index.append()


def test_filter(three):
    def sizes(index):
        return [c["batch_size"] for c in index["model_configs"]]

    assert sizes(model_index.filter(three, batch_sizes=4)) == [4]
    assert sizes(model_index.filter(three, batch_sizes=[1, 8])) == [1, 8]
    assert sizes(model_index.filter(three, status="finished")) == [1, 4]
    assert sizes(model_index.filter(three, batch_sizes=None, pipeline_sizes=None)) == [1, 4, 8]
    assert sizes(model_index.filter(three, pipeline_sizes=[2])) == []
    assert sizes(model_index.filter(three, filename="./models/m_b4_p1_bbbb.pt")) == [4]
    with pytest.raises(ValueError, match="unknown criterion 'batch'"):
        model_index.filter(three, batch=1)
    assert len(three["model_configs"]) == 3  # filtering copies


def test_configs_returns_finished_matches(three):
    assert [c["batch_size"] for c in model_index.configs(three)] == [1, 4]
    assert [c["batch_size"] for c in model_index.configs(three, batch_sizes=[4, 8])] == [4]


def test_configs_says_what_the_index_holds(three, tmp_path):
    path = model_index.save(three, tmp_path / "m.json")
    with pytest.raises(ValueError) as info:
        model_index.configs(path, batch_sizes=[8], pipeline_sizes=1)
    assert str(info.value) == (
        f"model index {path!r}: no finished configuration matches batch_sizes=[8], pipeline_sizes=[1]; "
        "it holds: batch_size=1 pipeline_size=1 (finished), batch_size=4 pipeline_size=1 (finished), "
        "batch_size=8 pipeline_size=1 (error)"
    )


def test_save_and_load_round_trip_from_another_directory(three, tmp_path, monkeypatch):
    path = model_index.save(three, "models/m.json")
    on_disk = json.loads(Path(path).read_text())
    assert on_disk["schema_version"] == 1
    assert [c["filename"] for c in on_disk["model_configs"]] == ["m_b1_p1_aaaa.pt", "m_b4_p1_bbbb.pt",
                                                                 "m_b8_p1_cccc.pt"]
    assert sorted(os.listdir("models")) == ["m.json", "m_b1_p1_aaaa.pt", "m_b4_p1_bbbb.pt"]  # no temp files
    loaded = model_index.load(path)
    assert loaded == three
    assert loaded.path == path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    far = model_index.load(tmp_path / "models" / "m.json")
    assert far["model_configs"][0]["filename"] == str(tmp_path / "models" / "m_b1_p1_aaaa.pt")
    assert all(os.path.isabs(c["filename"]) for c in far["model_configs"])


def test_save_defaults_to_the_loaded_path_then_the_model_name(three, tmp_path):
    assert model_index.save(three) == "m.json"
    loaded = model_index.load("m.json")
    loaded["model_configs"].pop()
    assert model_index.save(loaded) == "m.json"
    assert len(model_index.load("m.json")["model_configs"]) == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"schema_version": 1, "model_name": "m", "model_configs": [', "not valid JSON"),
        ("[1, 2]", "expected a JSON object, found list"),
        ('{"model_name": "m", "model_configs": []}', "neither 'schema_version' nor 'NeuronPerf_version'"),
        ('{"schema_version": "1", "model_name": "m", "model_configs": []}', "'schema_version' must be"),
        ('{"schema_version": 1, "model_configs": []}', "'model_name' must be a string, found nothing"),
        ('{"schema_version": 1, "model_name": "m", "model_configs": {}}', "'model_configs' must be a list"),
        ('{"schema_version": 1, "model_name": "m", "model_configs": [3]}', "model_configs[0] must be an object"),
        ('{"schema_version": 1, "model_name": "m", "model_configs": [{"filename": "a.pt", "batch_size": 1, '
         '"pipeline_size": 1}]}', "model_configs[0] has no 'status'"),
        ('{"schema_version": 1, "model_name": "m", "model_configs": [{"filename": "a.pt", "batch_size": "1", '
         '"pipeline_size": 1, "status": "finished"}]}', "'batch_size' must be a whole number >= 1, found '1'"),
        ('{"schema_version": 1, "model_name": "m", "model_configs": [{"filename": "a.pt", "batch_size": true, '
         '"pipeline_size": 1, "status": "finished"}]}', "'batch_size' must be a whole number >= 1, found True"),
        ('{"schema_version": 1, "model_name": "m", "model_configs": [{"filename": "a.pt", "batch_size": 1, '
         '"pipeline_size": 1, "status": "finished", "compile_s": "fast"}]}', "'compile_s' must be a number"),
    ],
)
def test_load_rejects_malformed_files(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        model_index.load(path)
    message = str(info.value)
    assert message.startswith(f"model index {str(path)!r}: ")
    assert problem in message


def test_load_refuses_a_newer_schema(tmp_path):
    path = write_json(tmp_path / "new.json", {"schema_version": 2, "model_name": "m", "model_configs": []})
    with pytest.raises(ValueError, match=r"schema_version 2 by a newer pytest-neuronperf.*upgrade pytest-neuronperf"):
        model_index.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        model_index.load(tmp_path / "none.json")


def test_load_neuronperf_index(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artifact(Path("models"), "m_b1_p1_83bh3hhs.pt")
    artifact(Path("indexes"), "beside.pt")
    path = write_json(tmp_path / "indexes" / "model_index.json", {
        "NeuronPerf_version": "1.0.0",
        "model_name": "m",
        "model_configs": [
            {"filename": "models/m_b1_p1_83bh3hhs.pt", "batch_size": 1, "pipeline_size": 1, "compile_s": 12.5},
            {"filename": "beside.pt", "batch_size": 2, "pipeline_size": 1, "status": "finished"},
            {"filename": "models/m_b4_p1_x.pt", "batch_size": 4, "pipeline_size": 1, "compile_s": 1.0,
             "status": "error"},
        ],
    })
    index = model_index.load(path)
    assert [(c["filename"], c["status"], c["compile_s"]) for c in index["model_configs"]] == [
        ("models/m_b1_p1_83bh3hhs.pt", "finished", 12.5),  # NeuronPerf paths are from its working directory
        (os.path.join("indexes", "beside.pt"), "finished", None),
        ("models/m_b4_p1_x.pt", "error", 1.0),
    ]
    assert [c["batch_size"] for c in model_index.configs(path)] == [1, 2]
    saved = json.loads(Path(model_index.save(index, "indexes/converted.json")).read_text())
    assert saved["schema_version"] == 1 and "NeuronPerf_version" not in saved
    assert saved["model_configs"][0]["filename"] == os.path.join("..", "models", "m_b1_p1_83bh3hhs.pt")


def test_copy_leaves_the_originals(three, tmp_path):
    copied = model_index.copy(three, tmp_path / "copy")
    assert sorted(os.listdir(tmp_path / "copy")) == ["m_b1_p1_aaaa.pt", "m_b4_p1_bbbb.pt"]
    assert os.path.exists("models/m_b1_p1_aaaa.pt")
    assert [c["filename"] for c in copied["model_configs"]] == [
        os.path.join("copy", "m_b1_p1_aaaa.pt"), os.path.join("copy", "m_b4_p1_bbbb.pt"),
        os.path.join("copy", "m_b8_p1_cccc.pt")]
    assert [c["status"] for c in copied["model_configs"]] == ["finished", "finished", "error"]


def test_move_takes_the_artifacts_along(three, tmp_path):
    moved = model_index.move(three, "moved")
    assert not os.path.exists("models/m_b1_p1_aaaa.pt")
    assert all(os.path.exists(c["filename"]) for c in model_index.configs(moved))
    assert model_index.move(moved, "moved") == moved  # already there


def test_copy_needs_every_finished_artifact(three, tmp_path):
    os.remove("models/m_b4_p1_bbbb.pt")
    with pytest.raises(FileNotFoundError, match=r"artifact 'models/m_b4_p1_bbbb.pt' \(batch_size=4"):
        model_index.copy(three, "copy")


def test_delete(three):
    path = model_index.save(three, "models/m.json")
    assert model_index.delete(three)["model_configs"] == []
    assert os.listdir("models") == ["m.json"]
    model_index.delete(path)
    assert os.listdir("models") == []
