"""Safety: only JSON is persisted and loaded, baseline files stay in their folder, nothing touches the network."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import pytest_neuronperf
from pytest_neuronperf.baselines.schema import parse_baseline
from tests.reliability import harness

PACKAGE = Path(pytest_neuronperf.__file__).parent
# Calls that turn bytes into code or arbitrary objects.
UNSAFE_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("marshal", "load"), ("marshal", "loads"),
    ("shelve", "open"), ("yaml", "load"), ("yaml", "unsafe_load"), ("dill", "load"), ("dill", "loads"),
    ("cloudpickle", "load"), ("cloudpickle", "loads"), ("joblib", "load"), ("numpy", "load"), ("np", "load"),
}
UNSAFE_BUILTINS = {"eval", "exec"}
NETWORK_MODULES = {"socket", "ssl", "urllib", "http", "requests", "httpx", "aiohttp", "ftplib", "smtplib",
                   "xmlrpc", "telnetlib", "boto3", "botocore"}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [f"{where}: imports {n}" for n in names if n.split(".")[0] in NETWORK_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in UNSAFE_BUILTINS:
            found.append(f"{where}: calls {func.id}()")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if (func.value.id, func.attr) in UNSAFE_CALLS:
                found.append(f"{where}: calls {func.value.id}.{func.attr}()")
            if (func.value.id, func.attr) == ("torch", "load"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                if not safe:
                    found.append(f"{where}: calls torch.load() without weights_only=True")
    return found


def test_the_package_never_deserialises_code_or_opens_network_connections() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    problems = [p for source in sources for p in _problems(source)]
    assert not problems, "\n".join(problems)


# Logs and refuses every attempt to reach another machine, in every Python process of the session
# (pytest, the forkserver, the copies): a sitecustomize on PYTHONPATH runs at each interpreter's start.
NETWORK_GUARD = '''
import os
import socket

_LOG = os.environ["NPF_NETWORK_LOG"]
_LOCAL = {socket.AF_UNIX}


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"network access refused in a test: {what}")


_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto


def connect(self, address):
    if self.family not in _LOCAL:
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family not in _LOCAL:
        _refuse(f"connect_ex {address!r}")
    return _connect_ex(self, address)


def sendto(self, *args):
    if self.family not in _LOCAL:
        _refuse(f"sendto {args[-1]!r}")
    return _sendto(self, *args)


def getaddrinfo(host, *args, **kwargs):
    _refuse(f"getaddrinfo {host!r}")


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.getaddrinfo = getaddrinfo
'''

HOSTILE_IDS = harness.HEADER + f"""
@pytest.mark.parametrize("where", ["up", "nested", "absolute", "dots", "colons"],
                         ids=["../../../escaped", "a/b/../../c", "/tmp/absolute", "..", "x::y"])
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_hostile(where):
    pass
"""


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_a_session_persists_only_json_inside_its_folders_and_never_uses_the_network(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    guard = tmp_path_factory.mktemp("guard")
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
    log = guard / "network.log"
    pytester.makepyfile(test_hostile=HOSTILE_IDS)
    before = _files(pytester.path)
    env = {"PYTHONPATH": f"{harness.REPO}:{guard}", "NPF_NETWORK_LOG": str(log)}
    done = harness.run(pytester, "--npf-save-baseline", "--npf-json=out/results.json", "--npf-csv=out/results.csv",
                       env=env)
    assert done.result.ret == 0, done.output
    assert not log.exists(), log.read_text()
    created = {f for f in _files(pytester.path) - before if not f.startswith(("stdout-", "stderr-"))}
    baseline = ".neuronperf/baselines/test_hostile.json"
    assert created == {baseline, "out/results.json", "out/results.csv"}
    # The ids live inside the file as entry keys, never in a file name.
    path = pytester.path / baseline
    entries = parse_baseline(path.read_bytes(), path).entries
    assert set(entries) == {f"test_hostile[{i}]::default::b1-n1-w1-p1"
                            for i in ("../../../escaped", "a/b/../../c", "/tmp/absolute", "..", "x::y")}
    assert json.loads((pytester.path / "out/results.json").read_text())["measurements"]
    assert not Path("/tmp/absolute").exists()
    assert not done.leftovers, done.describe_leftovers()


OUTSIDE = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_outside():
    pass
"""


def test_a_test_file_outside_the_rootdir_saves_inside_the_baseline_folder(pytester: pytest.Pytester) -> None:
    root = pytester.mkdir("root")
    (root / "pytest.ini").write_text("[pytest]\n")
    outside = pytester.mkdir("outside")
    (outside / "test_outside.py").write_text(OUTSIDE)
    done = harness.run(pytester, "--rootdir=root", "-c", "root/pytest.ini", "outside/test_outside.py",
                       "--npf-save-baseline")
    assert done.result.ret == 0, done.output
    saved = [p for p in pytester.path.rglob("*.json")]
    assert saved and all(p.is_relative_to(root / ".neuronperf" / "baselines") for p in saved), saved
