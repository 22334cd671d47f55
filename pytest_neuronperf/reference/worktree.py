"""The code of a git revision, checked out beside the user's own, for measuring "as it was at REF".

A revision is checked out once into a cache folder keyed by its commit sha (``git worktree add
--detach``) and reused by later runs. The user's checkout is never touched: no branch switch, no
stash, nothing staged; the cache folder is one git ignores (pytest's cache directory, or a folder
with a ``.gitignore`` of its own), so ``git add .neuronperf`` never commits it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pytest_neuronperf._util.filelock import FileLock


class RevisionError(ValueError):
    """The revision to compare against cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class ReferenceCheckout:
    """Revision ``ref`` (commit ``sha``) of the repository at ``repo_root``, checked out at ``path``."""

    ref: str
    sha: str
    repo_root: Path
    path: Path

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def label(self) -> str:
        """How messages name the reference: ``origin/main (3f2a9c1)``."""
        return self.short_sha if self.ref.startswith(self.short_sha) else f"{self.ref} ({self.short_sha})"

    def map_path(self, path: str | os.PathLike[str]) -> Path | None:
        """Where ``path`` (inside the user's repository) is in the checkout; None for a path outside it."""
        resolved = Path(os.path.realpath(path))
        if resolved.is_relative_to(self.path) or not resolved.is_relative_to(self.repo_root):
            return None
        return self.path / resolved.relative_to(self.repo_root)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise RevisionError("--npf-against needs git, and no git command was found on PATH") from None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _git_error(text: str) -> str:
    """git's own reason from its stderr (``fatal: ...``), not the progress lines printed before it."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else "")


def repository_root(start: Path) -> Path:
    """The top folder of the git repository holding ``start``; RevisionError outside one."""
    done = _git(["rev-parse", "--show-toplevel"], start)
    if done.returncode != 0:
        raise RevisionError(
            f"--npf-against: {start} is not inside a git repository ({_first_line(done.stderr)}); run pytest from "
            "a git checkout, or compare with a reference model instead (reference= on the marker)"
        )
    return Path(os.path.realpath(done.stdout.strip()))


def resolve(ref: str, repo_root: Path) -> str:
    """The commit sha ``ref`` names; RevisionError naming the fix when it names none."""
    if not ref.strip() or ref.startswith("-"):
        raise RevisionError(f"--npf-against: expected a git revision such as origin/main, a tag or a sha, got {ref!r}")
    done = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], repo_root)
    if done.returncode == 0:
        return done.stdout.strip()
    shallow = _git(["rev-parse", "--is-shallow-repository"], repo_root).stdout.strip() == "true"
    if shallow:
        raise RevisionError(
            f"--npf-against: revision {ref!r} is not in this shallow clone; fetch it first, e.g. "
            f"git fetch --depth=50 origin {ref.removeprefix('origin/')} (or clone with fetch-depth: 0 in CI)"
        )
    raise RevisionError(
        f"--npf-against: unknown revision {ref!r} in {repo_root}; give a branch, tag or commit that exists here "
        "(for a remote branch, git fetch it first: git fetch origin main)"
    )


def _is_checkout_of(path: Path, sha: str) -> bool:
    if not (path / ".git").exists():
        return False
    head = _git(["rev-parse", "HEAD"], path)
    status = _git(["status", "--porcelain", "--untracked-files=no"], path)
    return head.returncode == 0 and head.stdout.strip() == sha and status.returncode == 0 and not status.stdout.strip()


def checkout(ref: str, start: Path, cache_dir: Path) -> ReferenceCheckout:
    """Revision ``ref`` of the repository holding ``start``, checked out under ``cache_dir`` (reused if there).

    Safe to call from several processes at once (xdist workers): they take a lock per revision.
    """
    repo_root = repository_root(start)
    sha = resolve(ref, repo_root)
    dest = cache_dir / sha
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(cache_dir / f"{sha}.lock", timeout=600)
        with lock:
            _check_out(ref, sha, repo_root, dest)
    except OSError as exc:
        raise RevisionError(
            f"--npf-against: could not check out {ref!r} ({sha[:7]}) under {cache_dir}: {exc}; the checkouts of "
            "other revisions go in that folder: make it a writable folder (or remove what is in its place)"
        ) from None
    return ReferenceCheckout(ref=ref, sha=sha, repo_root=repo_root, path=dest)


def _check_out(ref: str, sha: str, repo_root: Path, dest: Path) -> None:
    """Check ``sha`` out at ``dest`` unless a clean checkout of it is there already."""
    if not _is_checkout_of(dest, sha):
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        _git(["worktree", "prune"], repo_root)
        done = _git(["worktree", "add", "--detach", "--force", str(dest), sha], repo_root)
        if done.returncode != 0:
            raise RevisionError(
                f"--npf-against: could not check out {ref!r} ({sha[:7]}) into {dest}: "
                f"{_git_error(done.stderr) or 'git worktree add failed'}; check that the folder is writable and "
                "that the disk has room"
            )


def ignored_cache_dir(folder: Path) -> Path:
    """``folder``, created with a ``.gitignore`` of ``*`` so that nothing in it is ever committed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Checkouts of other revisions made by pytest-neuronperf (--npf-against).\n*\n")
    except OSError as exc:
        raise RevisionError(
            f"--npf-against: cannot use {folder} for the checkouts of other revisions: {exc}; make it a writable "
            "folder (or remove the file in its place)"
        ) from None
    return folder
