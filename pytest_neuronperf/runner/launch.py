"""How model-copy processes start: which forkserver forks them, and what each one imports first.

Every round starts fresh copies, so that rounds are independent; what a copy would import
(torch, this package, the model's own modules, the modules its inputs and functions come from)
is imported once, by the forkserver that forks the copies, and a copy starts in milliseconds
instead of paying the imports again (transformers alone takes seconds). Each set of modules has
a forkserver of its own (:class:`_Servers`): a comparison against another revision runs its
reference copies from a server that preloads none of the repository's modules, so that they
import the checkout's.

A copy runs the user's main module again only when something it receives is defined there
(:mod:`pytest_neuronperf.spec.main_module`); multiprocessing's own rule, re-running the main
script in every child, runs a script without an ``if __name__ == "__main__":`` guard again,
benchmark call and all. The two Popen classes below are multiprocessing's (unchanged since
Python 3.8) with that preparation data and a chosen forkserver.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import sys
import sysconfig
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import popen_forkserver, popen_spawn_posix, process, reduction, spawn, util
from multiprocessing.context import BaseContext, set_spawning_popen
from multiprocessing.forkserver import ForkServer, read_signed
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pytest_neuronperf._util.log import logger
from pytest_neuronperf._util.processes import is_running
from pytest_neuronperf.spec.main_module import MAIN, check_main_reusable, main_objects, modules_named

if TYPE_CHECKING:
    from pytest_neuronperf.backends.base import Backend
    from pytest_neuronperf.runner.replica import CopyJob

_HARNESS = __name__.partition(".")[0]
# What every copy imports, whatever its model: preloaded even with automatic preloading off.
BASE_PRELOAD = ("pytest_neuronperf.runner.replica", "pytest_neuronperf.runner.launch",
                "pytest_neuronperf.backends.registry", "numpy", "torch")
# runner.preload (in the server) reads its instructions from a module name under this prefix.
PRELOAD_MODULE = "pytest_neuronperf.runner.preload"
PAYLOAD_PREFIX = PRELOAD_MODULE + ".p"
OFF = "off"
# Forkservers kept running at once (the current side, a reference side, one more).
KEEP_SERVERS = 3
# How long a forkserver that is no longer wanted gets to exit before it is killed.
SERVER_STOP_S = 2.0
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass
class _Preload:
    automatic: bool = True
    extra: tuple[str, ...] = ()


_preload = _Preload()


def set_preload(words: Sequence[str]) -> None:
    """Modules every copies' forkserver imports besides the automatic ones; the word ``off`` turns
    the automatic ones (the model's modules, its inputs' and functions') off."""
    bad = [w for w in words if w != OFF and not _MODULE_RE.fullmatch(w)]
    if bad:
        raise ValueError(f"preload: expected module names such as transformers or mypkg.models, or off, got "
                         f"{', '.join(map(repr, bad))}")
    _preload.automatic = OFF not in words
    _preload.extra = tuple(w for w in dict.fromkeys(words) if w != OFF)


def payload_name(modules: Sequence[str], sys_path: Sequence[str]) -> str:
    """The name that makes runner.preload, in the server, import ``modules`` with ``sys_path``."""
    data = json.dumps({"modules": list(modules), "path": list(sys_path)}, separators=(",", ":"))
    return PAYLOAD_PREFIX + data.encode().hex()


class _Servers:
    """One forkserver per set of preloaded modules; the least recently used beyond KEEP_SERVERS stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: OrderedDict[tuple[str, ...], ForkServer] = OrderedDict()
        # Every set of modules a plan's copies asked for, in order: what the next session may start early.
        self.asked: list[tuple[str, ...]] = []

    def get(self, modules: tuple[str, ...], *, share: bool = True) -> ForkServer:
        """The server for ``modules``; ``share``: a running server that has all that matters of them will do
        (never for copies that must import the repository's modules from elsewhere)."""
        with self._lock:
            if modules not in self.asked:
                self.asked.append(modules)
            return self._get(modules, share)

    def start_early(self, sets: Sequence[Sequence[str]]) -> None:
        """Start the forkservers of ``sets`` now, without waiting for their imports: a server imports
        its modules in its own process, meanwhile this one goes on (pytest collects the tests, and
        the tests import the same heavy modules), and the first copy is forked as soon as it is ready."""
        with self._lock:
            for modules in list(sets)[-KEEP_SERVERS:]:
                self._get(tuple(modules), share=False).ensure_running()

    def _get(self, modules: tuple[str, ...], share: bool) -> ForkServer:
        server = self._servers.pop(modules, None)
        if server is None and share:
            modules, server = self._covering(modules)
        if server is None:
            server = ForkServer()
            sys_path = spawn.get_preparation_data("npf-forkserver")["sys_path"]
            server.set_forkserver_preload([PRELOAD_MODULE, payload_name(modules, sys_path)])
            logger.debug("A forkserver for model copies preloads %s.", ", ".join(modules))
        self._servers[modules] = server
        while len(self._servers) > KEEP_SERVERS:
            _, old = self._servers.popitem(last=False)
            stop_server(old)
        return server

    def _covering(self, modules: tuple[str, ...]) -> tuple[tuple[str, ...], ForkServer | None]:
        """A running server that has what ``modules`` would cost to import: each module it lacks is one of
        the user's own (not installed, not the standard library) whose imports the server has. A copy
        imports such a module itself in milliseconds, where a new server would import torch again."""
        for key in reversed(self._servers):
            have = set(key)
            # A server's own extras are harmless here: a copy only uses what it imports.
            if all(m in have or _cheap_beside(m, have) for m in modules):
                return key, self._servers.pop(key)
        return modules, None

    def stop_all(self) -> None:
        with self._lock:
            while self._servers:
                stop_server(self._servers.popitem()[1])


SERVERS = _Servers()


def stop_server(server: ForkServer, wait_s: float = SERVER_STOP_S) -> None:
    """Stop ``server``: close its "alive" pipe (it exits when no one holds it), then SIGKILL after ``wait_s``.

    ``ForkServer._stop`` waits without a bound, and a copy stuck in the kernel still holds the pipe.
    """
    pid: int | None = server._forkserver_pid  # type: ignore[attr-defined]
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.close(server._forkserver_alive_fd)  # type: ignore[attr-defined]
    deadline = time.monotonic() + wait_s
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
    address = server._forkserver_address  # type: ignore[attr-defined]
    if isinstance(address, str) and not util.is_abstract_socket_namespace(address):
        with contextlib.suppress(OSError):
            os.unlink(address)
    server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None  # type: ignore[attr-defined]


_INSTALLED = tuple({sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")})


def _installed(module: ModuleType) -> bool:
    """Part of Python or of an installed package (a built-in, or a file under their folders)."""
    path = getattr(module, "__file__", None)
    return not isinstance(path, str) or os.path.realpath(path).startswith(_INSTALLED)


def _cheap_beside(name: str, have: set[str]) -> bool:
    """Whether module ``name`` is the user's own and imports nothing heavy beyond what ``have`` holds:
    what its namespace refers to (modules, classes, functions) comes from ``have``, from the packages
    of ``have``, from the standard library or from the module itself."""
    module = sys.modules.get(name)
    if module is None or _installed(module):
        return False
    roots = {m.partition(".")[0] for m in have}
    for value in list(vars(module).values()):
        source = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if not isinstance(source, str) or source == name or source in have or source.partition(".")[0] in roots:
            continue
        if source in sys.stdlib_module_names or source.partition(".")[0] in sys.stdlib_module_names:
            continue
        return False
    return True


def preload_for(job: CopyJob, backend: Backend, user_values: dict[str, object],
                redirect: tuple[str, str] | None) -> tuple[str, ...]:
    """The modules the forkserver of ``job``'s copies imports: what each copy would import anyway.

    ``redirect`` (repository, checkout): reference copies import the repository's modules from the
    checkout, so none of them is preloaded there (modules outside the repository still are).
    """
    modules = [*BASE_PRELOAD, type(backend).__module__]
    user: list[str] = []
    if _preload.automatic:
        user += [*job.run.model.source.preload, *modules_named(user_values)]
    user += _preload.extra
    if redirect is not None:
        root = Path(os.path.realpath(redirect[0]))
        user = [m for m in user if _outside(m, root)]
    return tuple(m for m in dict.fromkeys(modules + user) if m != MAIN)


def _outside(module: str, root: Path) -> bool:
    """Whether ``module`` (already imported here) loads from outside the repository at ``root``."""
    if module.partition(".")[0] == _HARNESS:
        return True  # both sides of a comparison run the same harness
    path = getattr(sys.modules.get(module), "__file__", None)
    return isinstance(path, str) and not Path(os.path.realpath(path)).is_relative_to(root)


@dataclass(frozen=True)
class Launch:
    """How one plan's copies start: from which forkserver (None: spawn), and whether they run the main module."""

    keep_main: bool
    server: ForkServer | None = field(default=None, compare=False)

    def preparation_data(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = spawn.get_preparation_data(name)
        if not self.keep_main:
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
        return data


def user_values(job: CopyJob) -> dict[str, object]:
    """The parts of ``job`` the user gave, by parameter name (what may come from the main module)."""
    return {"inputs": job.model_input, "preprocess_fn": job.preprocess_fn, "postprocess_fn": job.postprocess_fn,
            "env_setup_fn": job.env_setup_fn, "setup_fn": job.setup_fn}


class CopyContext(BaseContext):
    """The multiprocessing context of one plan's model copies: ``forkserver`` or ``spawn``."""

    def __init__(self, method: str) -> None:
        self._name = method
        self._launches: dict[tuple[Any, ...], Launch] = {}
        self.launch: Launch | None = None

    def prepare(self, job: CopyJob, backend: Backend, redirect: tuple[str, str] | None = None) -> Launch:
        """Choose how ``job``'s copies start; MainModuleError when they need a main module they cannot run."""
        source = job.run.model.source
        key = (source, id(job.model_input), job.preprocess_fn, job.postprocess_fn, job.env_setup_fn,
               job.setup_fn, redirect)
        launch = self._launches.get(key)
        if launch is None:
            values = user_values(job)
            model = source.qualname if source.kind == "factory" and source.module == MAIN else None
            keep_main = check_main_reusable(main_objects(values, model))
            server = None
            if self._name == "forkserver":
                # Preloading turned off means the copies import the model's modules: no server that has them.
                share = redirect is None and _preload.automatic
                server = SERVERS.get(preload_for(job, backend, values, redirect), share=share)
            launch = self._launches[key] = Launch(keep_main, server)
        self.launch = launch
        return launch

    def Process(self, *args: Any, **kwargs: Any) -> CopyProcess:
        if self.launch is None:
            raise RuntimeError("CopyContext.prepare() must choose how copies start before one is started")
        p = CopyProcess(*args, **kwargs)
        p._start_method = self._name
        p.how = self.launch
        return p


class CopyProcess(process.BaseProcess):
    """A model-copy process; ``how`` stays in the parent (the child gets the rest of the object)."""

    _start_method: str | None = None
    how: Launch | None = None

    @staticmethod
    def _Popen(process_obj: CopyProcess) -> Any:
        how = process_obj.how
        assert how is not None
        if how.server is None:
            return _SpawnPopen(process_obj, how)
        return _ServerPopen(process_obj, how)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("how", None)
        return state


def server_gone(proc: object) -> bool:
    """Whether the forkserver that started ``proc`` is no longer running."""
    pid = getattr(getattr(proc, "_popen", None), "server_pid", None)
    return isinstance(pid, int) and not is_running(pid)


def _startup_data(popen: popen_forkserver.Popen | popen_spawn_posix.Popen, how: Launch,
                  process_obj: CopyProcess) -> io.BytesIO:
    """What a new copy reads first: the preparation data ``how`` chose, then the process object."""
    data = io.BytesIO()
    set_spawning_popen(popen)
    try:
        reduction.dump(how.preparation_data(process_obj._name), data)  # type: ignore[attr-defined]
        reduction.dump(process_obj, data)
    finally:
        set_spawning_popen(None)
    return data


class _ServerPopen(popen_forkserver.Popen):
    _fds: list[int]

    def __init__(self, process_obj: CopyProcess, how: Launch) -> None:
        self.how = how
        self.server_pid: int | None = None
        super().__init__(process_obj)  # runs _launch

    def _launch(self, process_obj: CopyProcess) -> None:
        server = self.how.server
        assert server is not None
        buf = _startup_data(self, self.how, process_obj)
        self.sentinel, w = server.connect_to_new_process(self._fds)
        self.server_pid = server._forkserver_pid  # type: ignore[attr-defined]
        # The duplicate of the data pipe's write end is the parent's sentinel for the child.
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = read_signed(self.sentinel)


class _SpawnPopen(popen_spawn_posix.Popen):
    _fds: list[int]

    def __init__(self, process_obj: CopyProcess, how: Launch) -> None:
        self.how = how
        super().__init__(process_obj)

    def _launch(self, process_obj: CopyProcess) -> None:
        from multiprocessing import resource_tracker

        tracker_fd = resource_tracker.getfd()
        assert tracker_fd is not None  # getfd() starts the tracker first
        self._fds.append(tracker_fd)
        fp = _startup_data(self, self.how, process_obj)
        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            cmd = spawn.get_command_line(tracker_fd=tracker_fd, pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            self.pid = util.spawnv_passfds(spawn.get_executable(), cmd, self._fds)  # type: ignore[arg-type]
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
        finally:
            fds_to_close = [fd for fd in (parent_r, parent_w) if fd is not None]
            self.finalizer = util.Finalize(self, util.close_fds, fds_to_close)  # type: ignore[attr-defined]
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)
