"""Checking out another revision beside the user's checkout, and importing a copy's code from it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_neuronperf.reference.worktree import RevisionError, checkout, ignored_cache_dir, resolve

pytestmark = pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
                                reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "models" / "__init__.py").write_text("")
    (root / "models" / "net.py").write_text("SPEED = 'old'\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "old")
    git(root, "tag", "v1")
    (root / "models" / "net.py").write_text("SPEED = 'new'\n")
    (root / "models" / "added.py").write_text("X = 1\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "new")
    (root / "models" / "net.py").write_text("SPEED = 'uncommitted'\n")
    return root


def test_a_revision_is_checked_out_once_and_the_users_tree_is_untouched(repo: Path) -> None:
    cache = ignored_cache_dir(repo / ".cache" / "npf")
    first = checkout("v1", repo, cache)
    assert first.sha == git(repo, "rev-parse", "v1")
    assert first.label == f"v1 ({first.sha[:7]})"
    assert (first.path / "models" / "net.py").read_text() == "SPEED = 'old'\n"
    assert (repo / "models" / "net.py").read_text() == "SPEED = 'uncommitted'\n"
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    # Nothing of the checkout shows up to be committed.
    assert git(repo, "status", "--porcelain") == "M models/net.py"
    again = checkout(first.sha, repo, cache)
    assert again.path == first.path
    assert first.map_path(repo / "models" / "net.py") == first.path / "models" / "net.py"
    assert first.map_path(first.path / "models" / "net.py") is None
    assert first.map_path("/") is None


def test_a_damaged_checkout_is_made_again(repo: Path) -> None:
    cache = ignored_cache_dir(repo / ".cache" / "npf")
    first = checkout("v1", repo, cache)
    (first.path / "models" / "net.py").write_text("edited")
    assert (checkout("v1", repo, cache).path / "models" / "net.py").read_text() == "SPEED = 'old'\n"


@pytest.mark.parametrize(
    ("ref", "message"),
    [("nope", "unknown revision 'nope'"), ("", "expected a git revision"), ("--all", "expected a git revision")],
)
def test_a_revision_that_names_no_commit_is_a_usage_error(repo: Path, ref: str, message: str) -> None:
    with pytest.raises(RevisionError, match=message):
        resolve(ref, repo)


def test_outside_a_repository_the_error_says_so(tmp_path: Path) -> None:
    with pytest.raises(RevisionError, match="is not inside a git repository"):
        checkout("main", tmp_path, tmp_path / "cache")


def test_a_shallow_clone_says_to_fetch(repo: Path, tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{repo}", str(shallow)], check=True)
    with pytest.raises(RevisionError, match=r"shallow clone.*git fetch --depth=50 origin v1"):
        resolve("v1", shallow)


def test_a_copy_imports_the_repositorys_modules_from_the_checkout(repo: Path) -> None:
    ref = checkout("v1", repo, ignored_cache_dir(repo / ".cache" / "npf"))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(repo)!r})
        from pytest_neuronperf.reference.redirect import install
        install({str(repo)!r}, {str(ref.path)!r})
        import models.net
        print(models.net.SPEED, models.net.__file__.startswith({str(ref.path)!r}))
        try:
            import models.added
        except ModuleNotFoundError as exc:
            print("missing:", exc.name)
        import pytest_neuronperf.gate.verdict as v
        print(v.__file__.startswith({str(ref.path)!r}))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:3] == ["old True", "missing: models.added", "False"]
