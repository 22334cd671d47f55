"""``--npf-against=REF`` end to end: pytest subprocesses in a temporary git repository measure each benchmark
test in the working tree and at REF, in alternating rounds, and judge the pairs."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.plugin import gitrepo
from tests.plugin.gitrepo import git

pytestmark = [pytest.mark.usefixtures("no_leftover_children"),
              pytest.mark.skipif(not gitrepo.needs_git, reason="git is not installed")]

QUICK = ("--npf-duration=0.6", "--npf-rounds=2", "--npf-max-rounds=3")

# Busy-wait models of ~300 us per call. Spinning against a deadline holds the service time whatever else the
# machine runs (a preempted spin ends at its deadline all the same), so only the factors below move it.
MODELS = '''
import time

import torch

SLOW_FACTOR = 1.0
FAST_FACTOR = 1.0


def spin(us):
    end = time.perf_counter_ns() + int(us * 1000)
    while time.perf_counter_ns() < end:
        pass


class Slow(torch.nn.Module):
    def forward(self, x):
        spin(300 * SLOW_FACTOR)
        return x


class Fast(torch.nn.Module):
    def forward(self, x):
        spin(300 * FAST_FACTOR)
        return x


class Same(torch.nn.Module):
    def forward(self, x):
        spin(300)
        return x
'''

# Added to models.py after REF: a model and a preprocessing function REF does not have.
ADDED_TO_MODELS = '''

class Brand(torch.nn.Module):
    def forward(self, x):
        spin(300)
        return x


def prep(item):
    return item
'''

# A module that does not exist at REF at all.
HELPERS = '''
def post(output):
    return None
'''


def bench(test: str, model: str, extra: str = "") -> str:
    return f'''
@pytest.mark.neuron_benchmark(model={model}, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1{extra})
def {test}():
    pass
'''


HEADER = "import pytest, torch\n\nimport models\n"
TESTS = HEADER + "".join([
    bench("test_slow", "models.Slow"),
    bench("test_fast", "models.Fast"),
    bench("test_same", "models.Same"),
])
NEW_TESTS = HEADER + "import helpers\n" + "".join([
    bench("test_brand", "models.Brand"),
    bench("test_new_pre", "models.Same", ", preprocess_fn=models.prep"),
    bench("test_new_post", "models.Same", ", postprocess_fn=helpers.post"),
])


# Plugins the child runs do not use, blocked to save a second of start-up each (hypothesis alone takes that).
UNUSED_PLUGINS = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess(*UNUSED_PLUGINS, *args, timeout=180)


def short(sha: str) -> str:
    return sha[:7]


@pytest.fixture
def repo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The pytester project as a git repository with the models committed at FACTOR 1.0 (HEAD = REF)."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(pytester.path.parent))  # no repository above it counts
    gitrepo.init(pytester.path)
    pytester.makepyfile(models=MODELS)
    return pytester.path


def change_models(repo: Path, **factors: str) -> None:
    text = (repo / "models.py").read_text()
    for name, value in factors.items():
        text = text.replace(f"{name} = 1.0", f"{name} = {value}")
    (repo / "models.py").write_text(text)


def outcomes_by_test(path: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads(path.read_text())
    return {m["test"].partition("::")[2]: m for m in doc["measurements"]}


def messages(measurement: dict[str, Any]) -> dict[str, str]:
    (outcome,) = measurement["outcomes"]
    return {j["metric"]: j["message"] for j in outcome["judgements"]}


def test_service_time_changes_are_judged_against_head(repo: Path, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_perf=TESTS)
    sha = gitrepo.commit_all(repo, "models at 1.0")
    change_models(repo, SLOW_FACTOR="1.5", FAST_FACTOR="1 / 1.5")  # uncommitted: the working tree
    before = gitrepo.status(repo)
    assert before == "M models.py"

    result = run(pytester, "--npf-against=HEAD", *QUICK, "--npf-json=out/results.json", "-rA")

    result.assert_outcomes(failed=1, passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["FAILED test_perf.py::test_slow*"])
    assert "PASSED test_perf.py::test_fast" in out and "PASSED test_perf.py::test_same" in out
    assert "performance regression in measurement 'default'" in out
    # e.g. "n_models=1 workers=1 batch=1 pipeline=1: p50 0.45 ms vs 0.30 ms at HEAD (64d9084) (+49.9%, 95% CI
    # +48%..+52%), beyond 5%"
    assert re.search(rf"n_models=1 workers=1 batch=1 pipeline=1: p50 [\d.]+ ms vs [\d.]+ ms at HEAD \({short(sha)}\) "
                     r"\(\+[\d.]+%, 95% CI [^)]*\), beyond 5%", out), out
    measured = outcomes_by_test(repo / "out" / "results.json")
    assert measured["test_slow"]["verdict"] == "fail"
    assert "beyond 5%" in messages(measured["test_slow"])["p50"]
    # 1.5x faster: passes (or, for throughput's noisier rounds, inconclusive), and says it got better.
    assert measured["test_fast"]["verdict"] in ("pass", "inconclusive")
    fast = messages(measured["test_fast"])["p50"]
    assert f"at HEAD ({short(sha)})" in fast and "better by more than 5%" in fast
    assert "stale" not in fast  # no stored baseline to re-record
    assert measured["test_same"]["verdict"] in ("pass", "inconclusive")  # never a failure
    assert all(f"at HEAD ({short(sha)})" in m for m in messages(measured["test_same"]).values())

    # The user's checkout is untouched: same status, branch and HEAD; the checkout of REF is ignored by git.
    assert gitrepo.status(repo) == before
    assert gitrepo.branch(repo) == "main" and gitrepo.head(repo) == sha
    assert gitrepo.checkouts(repo) == [sha]
    assert "SLOW_FACTOR = 1.0" in (gitrepo.revisions(repo) / sha / "models.py").read_text()  # REF's code
    # No baselines are needed, and none are written.
    assert not (repo / ".neuronperf" / "baselines").exists()


@pytest.mark.slow
def test_models_and_functions_new_in_this_change_pass_with_a_note(repo: Path, pytester: pytest.Pytester) -> None:
    sha = gitrepo.commit_all(repo, "models without Brand, prep or helpers")
    (repo / "models.py").write_text((repo / "models.py").read_text() + ADDED_TO_MODELS)
    pytester.makepyfile(helpers=HELPERS, test_new=NEW_TESTS)

    result = run(pytester, "--npf-against=HEAD", *QUICK, "--npf-json=out/results.json")

    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    label = f"HEAD ({short(sha)})"
    # In the terminal summary's notes, one per test.
    for test in ("test_brand", "test_new_pre", "test_new_post"):
        assert any(line.startswith(f"note: test_new.py::{test}: ") and "new in this change" in line
                   for line in out.splitlines()), test
    assert f"new in this change: models:Brand (or a function it needs) does not exist at {label}" in out
    measured = outcomes_by_test(repo / "out" / "results.json")
    for test in ("test_brand", "test_new_pre", "test_new_post"):
        (note,) = measured[test]["notes"]
        assert "new in this change" in note and f"does not exist at {label}" in note
        (outcome,) = measured[test]["outcomes"]
        assert outcome["judgements"] == []  # nothing to compare with: no verdict against REF
    assert "models:Same (or a function it needs)" in measured["test_new_pre"]["notes"][0]
    assert not (repo / ".neuronperf" / "baselines").exists()


def test_the_checkout_is_reused_and_the_users_tree_untouched(repo: Path, pytester: pytest.Pytester) -> None:
    # The checkout is made when pytest starts; a plain test (no torch to import) keeps these runs quick.
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    sha = gitrepo.commit_all(repo, "one")
    (repo / "untracked.txt").write_text("the user's own, uncommitted\n")
    before = gitrepo.status(repo)

    run(pytester, "--npf-against=HEAD").assert_outcomes(passed=1)
    checkout = gitrepo.revisions(repo) / sha
    assert gitrepo.checkouts(repo) == [sha]
    assert gitrepo.worktrees(repo) == [Path(os.path.realpath(repo)), Path(os.path.realpath(checkout))]
    # Marks of this very folder: a second `git worktree add` would replace it (and drop the untracked marker).
    (checkout / "npf-test-marker").write_text("")
    inode, git_file_mtime = checkout.stat().st_ino, (checkout / ".git").stat().st_mtime_ns

    run(pytester, "--npf-against=HEAD").assert_outcomes(passed=1)
    assert (checkout / "npf-test-marker").exists()
    assert checkout.stat().st_ino == inode and (checkout / ".git").stat().st_mtime_ns == git_file_mtime
    assert gitrepo.checkouts(repo) == [sha] and len(gitrepo.worktrees(repo)) == 2

    assert gitrepo.status(repo) == before == "?? untracked.txt"
    assert gitrepo.branch(repo) == "main" and gitrepo.head(repo) == sha
    assert not (repo / ".neuronperf" / "baselines").exists()


@pytest.fixture
def two_commits(repo: Path) -> tuple[str, str]:
    """REF (tagged v1) at FACTOR 1.0, then HEAD with the Slow model 1.5x slower, committed; a clean tree."""
    first = gitrepo.commit_all(repo, "models at 1.0")
    git(repo, "tag", "v1")
    change_models(repo, SLOW_FACTOR="1.5")
    return first, gitrepo.commit_all(repo, "Slow at 1.5")


def test_an_earlier_commit_named_relative_to_a_branch(repo: Path, pytester: pytest.Pytester,
                                                      two_commits: tuple[str, str]) -> None:
    first, second = two_commits
    pytester.makepyfile(test_perf=HEADER + bench("test_slow", "models.Slow"))
    result = run(pytester, "--npf-against=main~1", *QUICK)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert f"at main~1 ({short(first)})" in out and "beyond 5%" in out
    assert gitrepo.checkouts(repo) == [first] and gitrepo.head(repo) == second


@pytest.mark.parametrize("form", ["sha", "tag", "main~1", "pytest.ini", "tox.ini"])
def test_ref_forms_resolve_to_the_commit_they_name(repo: Path, pytester: pytest.Pytester,
                                                   two_commits: tuple[str, str], form: str) -> None:
    first, second = two_commits
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")  # the checkout is made at start-up
    args: tuple[str, ...]
    if form == "pytest.ini":
        (repo / "pytest.ini").write_text("[pytest]\nnpf_against = HEAD\n")
        args, expected = (), second
    elif form == "tox.ini":
        (repo / "tox.ini").write_text("[pytest]\nnpf_against = v1\n")
        args, expected = (), first
    else:
        ref = {"sha": first, "tag": "v1", "main~1": "main~1"}[form]
        args, expected = (f"--npf-against={ref}",), first
    run(pytester, *args).assert_outcomes(passed=1)
    assert gitrepo.checkouts(repo) == [expected]
    factor = "1.0" if expected == first else "1.5"
    assert f"SLOW_FACTOR = {factor}" in (gitrepo.revisions(repo) / expected / "models.py").read_text()


def test_save_baseline_with_against_is_a_usage_error(repo: Path, pytester: pytest.Pytester) -> None:
    gitrepo.commit_all(repo, "one")
    result = run(pytester, "--npf-against=HEAD", "--npf-save-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--npf-against" in err and "--npf-save-baseline" in err
    assert not (repo / ".neuronperf" / "baselines").exists()


def test_outside_a_git_repository_is_a_usage_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(pytester.path.parent))
    result = run(pytester, "--npf-against=main")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "is not inside a git repository" in err and "run pytest from a git checkout" in err
    assert "reference=" in err  # the alternative that needs no repository


def test_an_unknown_revision_is_a_usage_error(repo: Path, pytester: pytest.Pytester) -> None:
    gitrepo.commit_all(repo, "one")
    result = run(pytester, "--npf-against=no-such-branch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "unknown revision 'no-such-branch'" in err and "give a branch, tag or commit that exists here" in err
    assert gitrepo.checkouts(repo) == []


def test_a_revision_missing_from_a_shallow_clone_says_how_to_fetch_it(
        repo: Path, pytester: pytest.Pytester, two_commits: tuple[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    shallow = tmp_path_factory.mktemp("shallow")
    git(shallow, "clone", "-q", "--depth=1", f"file://{repo}", ".")
    assert git(shallow, "rev-parse", "--is-shallow-repository") == "true"
    result = run(pytester, f"--rootdir={shallow}", "--npf-against=HEAD~1", str(shallow))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "'HEAD~1' is not in this shallow clone" in err and "git fetch --depth" in err


def test_a_checkout_that_cannot_be_made_is_a_usage_error(repo: Path, pytester: pytest.Pytester) -> None:
    sha = gitrepo.commit_all(repo, "one")
    gitrepo.revisions(repo).mkdir(parents=True)
    (gitrepo.revisions(repo) / sha).write_text("a file where the checkout should go")  # git worktree add fails
    result = run(pytester, "--npf-against=HEAD")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"could not check out 'HEAD' ({short(sha)})" in err
    assert "check that the folder is writable and that the disk has room" in err
    assert gitrepo.status(repo) == "" and gitrepo.worktrees(repo) == [Path(os.path.realpath(repo))]


def test_a_failed_checkout_quotes_gits_error(repo: Path, pytester: pytest.Pytester) -> None:
    sha = gitrepo.commit_all(repo, "one")
    gitrepo.revisions(repo).mkdir(parents=True)
    (gitrepo.revisions(repo) / sha).write_text("a file where the checkout should go")
    result = run(pytester, "--npf-against=HEAD")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "already exists" in result.stderr.str()  # git's own reason: "fatal: '...' already exists"


def test_a_revisions_folder_that_is_a_file_is_a_usage_error(repo: Path, pytester: pytest.Pytester) -> None:
    gitrepo.commit_all(repo, "one")
    (repo / ".neuronperf").mkdir()
    gitrepo.revisions(repo).write_text("not a folder")
    result = run(pytester, "--npf-against=HEAD")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ".neuronperf/revisions" in result.stderr.str()


def save_mlp(path: Path, hidden: int, layers: int) -> None:
    import torch

    sizes = [64] + [hidden] * layers + [64]
    parts: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        parts += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    torch.jit.save(torch.jit.script(torch.nn.Sequential(*parts).eval()), str(path))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")  # TorchScript is what the files hold
def test_a_model_file_resolves_inside_the_checkout(repo: Path, pytester: pytest.Pytester) -> None:
    save_mlp(repo / "model.pt", hidden=32, layers=1)  # small at REF
    pytester.makepyfile(test_files='''
import pytest, torch

@pytest.mark.neuron_benchmark(model="model.pt", inputs=torch.zeros(1, 64), n_models=1, workers_per_model=1)
def test_grown():
    pass

@pytest.mark.neuron_benchmark(model="added.pt", inputs=torch.zeros(1, 64), n_models=1, workers_per_model=1)
def test_added():
    pass
''')
    sha = gitrepo.commit_all(repo, "small model")
    save_mlp(repo / "model.pt", hidden=1024, layers=2)  # the working tree's model is much bigger
    save_mlp(repo / "added.pt", hidden=32, layers=1)  # and this file does not exist at REF

    # An MLP's latency is noisier than a busy-wait's on a loaded machine: a t-test on 2 pairs has 1 degree of
    # freedom, so even a many-fold slowdown may need the third look or later to be significant.
    result = run(pytester, "--npf-against=HEAD", "--npf-duration=0.6", "--npf-rounds=3", "--npf-max-rounds=6", "-rA")

    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["FAILED test_files.py::test_grown*"])
    out = result.stdout.str()
    assert f"at HEAD ({short(sha)})" in out and "beyond 5%" in out
    assert f"new in this change: added.pt does not exist at HEAD ({short(sha)})" in out


@pytest.mark.slow
def test_under_xdist_both_workers_compare_against_one_checkout(repo: Path, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_perf=HEADER + bench("test_one", "models.Same") + bench("test_two", "models.Fast"))
    sha = gitrepo.commit_all(repo, "one")
    before = gitrepo.status(repo)

    result = run(pytester, "-n", "2", "--npf-against=HEAD", *QUICK, "--npf-json=out/results.json")

    result.assert_outcomes(passed=2)
    measured = outcomes_by_test(repo / "out" / "results.json")
    assert sorted(measured) == ["test_one", "test_two"]
    for m in measured.values():  # each worker measured its test against the revision
        assert m["verdict"] in ("pass", "inconclusive")
        assert all(f"at HEAD ({short(sha)})" in text for text in messages(m).values())
    assert gitrepo.checkouts(repo) == [sha] and len(gitrepo.worktrees(repo)) == 2
    assert gitrepo.status(repo) == before


def test_a_model_imported_from_outside_the_repository_is_warned_about(repo: Path, pytester: pytest.Pytester,
                                                                       tmp_path_factory: pytest.TempPathFactory,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # As a package installed into site-packages would be: the same code on both sides.
    outside = tmp_path_factory.mktemp("site")
    (outside / "installed_models.py").write_text(MODELS)
    monkeypatch.setenv("PYTHONPATH", str(outside))
    pytester.makepyfile(test_perf=HEADER + "import installed_models\n" + bench("test_same", "installed_models.Same"))
    gitrepo.commit_all(repo, "one")
    result = run(pytester, "--npf-against=HEAD", *QUICK, "-W", "always::UserWarning")
    assert result.ret == pytest.ExitCode.OK
    text = result.stdout.str()
    assert "the model's module 'installed_models' is imported from" in text
    assert "--npf-against cannot see a change in it" in text
    assert "pip install -e ." in text
