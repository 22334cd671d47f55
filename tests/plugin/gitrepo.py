"""Small git helpers for the plugin tests that compare against a revision (a temporary repository each)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Files the test harness itself leaves in a pytester project (bytecode; pytester's --basetemp folders, its
# runpytest-current link and its captured stdout/stderr files; result files the tests ask for): committed as
# ignored, so that `git status` shows only what the plugin would leave behind.
HARNESS_IGNORES = "__pycache__/\nrunpytest-*\n/stdout\n/stderr\nout/\n"

needs_git = shutil.which("git") is not None


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (no prompts, a fixed identity) and return its stdout, stripped; raise on failure."""
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false",
         *args],
        cwd=repo, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=60,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {repo} ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def init(repo: Path) -> None:
    """A new repository on branch ``main`` whose ignore file hides the test harness's own files."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text(HARNESS_IGNORES)


def commit_all(repo: Path, message: str) -> str:
    """Commit everything in the working tree; the new commit's sha."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def status(repo: Path) -> str:
    """``git status --porcelain`` (untracked files included)."""
    return git(repo, "status", "--porcelain", "--untracked-files=all")


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def branch(repo: Path) -> str:
    return git(repo, "symbolic-ref", "--short", "HEAD")


def worktrees(repo: Path) -> list[Path]:
    """Every worktree of the repository, the main one first (resolved paths)."""
    lines = git(repo, "worktree", "list", "--porcelain").splitlines()
    return [Path(os.path.realpath(line.removeprefix("worktree "))) for line in lines if line.startswith("worktree ")]


def revisions(repo: Path) -> Path:
    """Where the plugin checks revisions out (``<rootdir>/.neuronperf/revisions``)."""
    return repo / ".neuronperf" / "revisions"


def checkouts(repo: Path) -> list[str]:
    """The shas checked out under the plugin's revisions folder (folders only, not lock files)."""
    folder = revisions(repo)
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
