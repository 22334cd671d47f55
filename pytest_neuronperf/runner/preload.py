"""What a model copies' forkserver imports before it forks its first copy (runs in the server).

multiprocessing imports each name given to ``set_forkserver_preload`` in the server and ignores
an ImportError, but any other exception a module raises at import ends the server, and with it
every copy. The server is therefore told to preload this module and one name under it,
``<this module>.p<hex>``, whose hex-encoded JSON carries the real list and ``sys.path`` (Python
before 3.14 never gives the server the parent's ``sys.path``). Importing that name runs
:func:`_preload`: each module is imported in turn, and whatever one raises is noted and
skipped; its copies import it again, and report its error, as they would without preloading.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType

# The parent builds the payload name (runner.launch.payload_name) without importing this module, so
# that the finder below is installed only in the server.
# This module stands for a package, so that the payload name under it reaches the finder below.
__path__: list[str] = []
PAYLOAD_PREFIX = f"{__name__}.p"
# Modules whose import failed in this server: name -> "ErrorType: message" (read by tests).
failed: dict[str, str] = {}


def _preload(text: str) -> None:
    data = json.loads(bytes.fromhex(text))
    sys.path[:] = [p for p in data["path"] if isinstance(p, str)]
    sys.path_importer_cache.clear()
    # torch.cuda.is_available() at a module's top level would initialise the CUDA driver in the
    # server, and no forked copy could use CUDA after that; the NVML-based check leaves it alone.
    # Copies get the caller's environment back (replica._run_copy), so this stays in the server.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    for name in data["modules"]:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # whatever a module raises at import must not end the server
            failed[name] = f"{type(exc).__name__}: {exc}"


class _PayloadLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        _preload(module.__name__[len(PAYLOAD_PREFIX):])


class _PayloadFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PAYLOAD_PREFIX):
            return None
        return importlib.machinery.ModuleSpec(fullname, _PayloadLoader())


if not any(isinstance(f, _PayloadFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _PayloadFinder())
