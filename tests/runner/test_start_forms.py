"""Every way of starting Python runs benchmarks whose model lives in an importable module, and a model
defined in a main module that copies cannot run again gets guidance before any copy starts.

Each case is a real interpreter (``sys.executable``) started the way a user starts one: a script with
and without an ``if __name__ == "__main__":`` guard, code on stdin, ``python -c``, ``python -m``, and a
main module without a file as in IPython and Jupyter (simulated: neither is a dependency).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODELS = """
import torch


class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.layer(x)


def argmax(y):
    return y.argmax()
"""
RUN = ('reports = npf.benchmark(M, torch.ones(1, 16), duration=0.3, n_models=[1], workers_per_model=[1], '
       'warmup=2{extra})\nprint("RESULT", reports[0]["status"], reports[0]["throughput_avg"] > 0)\n')
IMPORTED = "import torch\nimport pytest_neuronperf as npf\nfrom mymodels import M\n"
IN_MAIN = "import torch\nimport pytest_neuronperf as npf\n" + MODELS
# A notebook kernel's __main__: a module with neither __file__ nor __spec__, where cells are executed.
NOTEBOOK = """
import sys, types
cell = open(sys.argv[1]).read()
main = types.ModuleType("__main__")
sys.modules["__main__"] = main
exec(compile(cell, "<cell>", "exec"), main.__dict__)
"""
MESSAGE_START = "is defined in the main module"
FIX = "Move it into a module file and import it from there (for example `from mymodels import M`)"
THREADS = "or pass multiprocess=False to run the copies as threads in this process"


def code(body: str, extra: str = "", guard: bool = False) -> str:
    run = RUN.format(extra=extra)
    if guard:
        run = 'if __name__ == "__main__":\n' + textwrap.indent(run, "    ")
    return body + run


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "mymodels.py").write_text(MODELS)
    return tmp_path


def python(folder: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=folder, input=stdin, capture_output=True, text=True,
                          timeout=180)


def assert_measured(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "RESULT finished True" in done.stdout, output
    assert "model copy 0" not in output and "Traceback" not in output, output


def assert_guidance(done: subprocess.CompletedProcess[str], where: str, *advice: str) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("pytest_neuronperf.spec.main_module.MainModuleError: model: 'M' " + MESSAGE_START), last
    assert f"({where})" in last, last
    for text in (FIX, THREADS, *advice):
        assert text in last, last
    # Said before any copy started: no copy failed, and nothing tried to read a file named <stdin>.
    assert "model copy 0" not in output and "FileNotFoundError" not in output, output
    return last


def test_a_script_without_a_guard_measures_an_imported_model(folder: Path) -> None:
    (folder / "script.py").write_text(code(IMPORTED))
    assert_measured(python(folder, "script.py"))


def test_a_script_without_a_guard_that_defines_the_model_is_told_to_move_it_or_add_the_guard(folder: Path) -> None:
    (folder / "script.py").write_text(code(IN_MAIN))
    last = assert_guidance(python(folder, "script.py"), f"the script {folder / 'script.py'}",
                           'that file has no `if __name__ == "__main__":` guard',
                           'or put the code that runs the benchmark under `if __name__ == "__main__":`')
    assert "its benchmark call included" in last


@pytest.mark.slow
def test_a_script_with_a_guard_may_define_the_model_and_its_functions(folder: Path) -> None:
    (folder / "script.py").write_text(code(IN_MAIN, extra=", postprocess_fn=argmax", guard=True))
    assert_measured(python(folder, "script.py"))


@pytest.mark.slow
def test_a_postprocess_function_in_an_unguarded_script_is_named(folder: Path) -> None:
    body = IMPORTED + "def argmax(y):\n    return y.argmax()\n"
    (folder / "script.py").write_text(code(body, extra=", postprocess_fn=argmax"))
    done = python(folder, "script.py")
    last = (done.stdout + done.stderr).strip().splitlines()[-1]
    assert done.returncode == 1 and "postprocess_fn: 'argmax' is defined in the main module" in last, last
    assert "`from mymodels import argmax`" in last and "model copy 0" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args", [["-"], []], ids=["python -", "python"])
def test_code_on_stdin_measures_an_imported_model(folder: Path, args: list[str]) -> None:
    assert_measured(python(folder, *args, stdin=code(IMPORTED)))


def test_code_on_stdin_that_defines_the_model_is_told_to_move_it_or_save_a_script(folder: Path) -> None:
    assert_guidance(python(folder, "-", stdin=code(IN_MAIN)), "code read from standard input, python -",
                    "that code cannot be read again",
                    'or save the code as a script with an `if __name__ == "__main__":` guard and run that')


def test_python_c_measures_an_imported_model(folder: Path) -> None:
    assert_measured(python(folder, "-c", code(IMPORTED)))


@pytest.mark.slow
def test_python_c_that_defines_the_model_is_told_to_move_it(folder: Path) -> None:
    assert_guidance(python(folder, "-c", code(IN_MAIN)), "a command given with python -c",
                    "it has no file that a copy could run again")


@pytest.mark.slow
def test_python_m_runs_a_module_without_a_guard(folder: Path) -> None:
    (folder / "bench_module.py").write_text(code(IMPORTED))
    assert_measured(python(folder, "-m", "bench_module"))


def test_a_notebook_measures_an_imported_model(folder: Path) -> None:
    (folder / "kernel.py").write_text(NOTEBOOK)
    (folder / "cell.py").write_text(code(IMPORTED))
    assert_measured(python(folder, "kernel.py", "cell.py"))


def test_a_notebook_that_defines_the_model_is_told_to_move_it(folder: Path) -> None:
    (folder / "kernel.py").write_text(NOTEBOOK)
    (folder / "cell.py").write_text(code(IN_MAIN))
    assert_guidance(python(folder, "kernel.py", "cell.py"), "an interactive session",
                    "it has no file that a copy could run again")


@pytest.mark.slow
def test_a_notebook_model_in_main_runs_with_copies_as_threads(folder: Path) -> None:
    (folder / "kernel.py").write_text(NOTEBOOK)
    (folder / "cell.py").write_text(code(IN_MAIN, extra=", multiprocess=False"))
    assert_measured(python(folder, "kernel.py", "cell.py"))


@pytest.mark.slow
def test_separate_interpreters_do_not_run_an_unguarded_script_again(folder: Path) -> None:
    (folder / "script.py").write_text(code(IMPORTED, extra=", multiinterpreter=True"))
    assert_measured(python(folder, "script.py"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["python -m pytest", "pytest"])
def test_the_plugin_measures_from_either_pytest_entry_point(folder: Path, how: str) -> None:
    (folder / "test_perf.py").write_text(
        "import pytest, torch\nfrom mymodels import M, argmax\n\n\n"
        "@pytest.mark.neuron_benchmark(model=M, inputs=torch.ones(1, 16), postprocess_fn=argmax, n_models=[1],\n"
        "                              workers_per_model=[1], duration=0.3, warmup=2, rounds=1)\n"
        "def test_m():\n    pass\n")
    entry = ["-m", "pytest"] if how == "python -m pytest" else []
    command = [sys.executable, *entry] if entry else [str(Path(sys.executable).parent / "pytest")]
    done = subprocess.run([*command, "-p", "no:cacheprovider", "-q", "--npf-no-compare", "test_perf.py"],
                          cwd=folder, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout
