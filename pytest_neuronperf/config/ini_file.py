"""The plugin's ini keys as pytest reads them, for the ``npf`` command, which runs without pytest.

The configuration file is found as pytest finds it (its documented rootdir rules): from the folder
the command runs in upwards, the first folder holding one of ``pytest.toml``, ``.pytest.toml``,
``pytest.ini``, ``.pytest.ini``, ``pyproject.toml`` with a ``[tool.pytest]`` or
``[tool.pytest.ini_options]`` table, ``tox.ini`` with a ``[pytest]`` section or ``setup.cfg`` with a
``[tool:pytest]`` section, in that order within a folder. Its folder is the rootdir (where
``npf_baseline_dir`` starts); without one, a ``pyproject.toml`` without pytest settings marks the
rootdir, else the folder the command runs in does.
"""

from __future__ import annotations

import configparser
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_neuronperf.config.options import OPTIONS
from pytest_neuronperf.errors import SettingsError

IniValues = dict[str, str | list[str] | bool]


@dataclass(frozen=True)
class IniFile:
    """The configuration file found (None: none), the rootdir, and the plugin's values in it by Settings field."""

    path: Path | None
    rootdir: Path
    values: IniValues = field(default_factory=dict)


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pytest itself depends on tomli before Python 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(str(path), f"cannot be read as TOML: {exc}") from None


def _ini(path: Path, section: str) -> dict[str, Any] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error) as exc:
        raise SettingsError(str(path), f"cannot be read as an ini file: {exc}") from None
    return dict(parser[section]) if parser.has_section(section) else None


def _pytest_toml(path: Path) -> dict[str, Any] | None:
    table = _toml(path).get("pytest")
    return dict(table) if isinstance(table, dict) else {}


def _pytest_ini(path: Path) -> dict[str, Any] | None:
    return _ini(path, "pytest") or {}


def _pyproject(path: Path) -> dict[str, Any] | None:
    tool = _toml(path).get("tool", {})
    pytest_table = tool.get("pytest") if isinstance(tool, dict) else None
    if not isinstance(pytest_table, dict):
        return None
    ini_options = pytest_table.get("ini_options")
    native = {k: v for k, v in pytest_table.items() if k != "ini_options"}
    return native or (dict(ini_options) if isinstance(ini_options, dict) else None)


# pytest's order within one folder; each returns the file's pytest values, or None when it holds none.
_LOADERS: tuple[tuple[str, Callable[[Path], dict[str, Any] | None]], ...] = (
    ("pytest.toml", _pytest_toml),
    (".pytest.toml", _pytest_toml),
    ("pytest.ini", _pytest_ini),
    (".pytest.ini", _pytest_ini),
    ("pyproject.toml", _pyproject),
    ("tox.ini", lambda p: _ini(p, "pytest")),
    ("setup.cfg", lambda p: _ini(p, "tool:pytest")),
)


def _plugin_values(raw: Mapping[str, Any]) -> IniValues:
    values: IniValues = {}
    for option in OPTIONS:
        value = raw.get(option.ini)
        if value is None:
            continue
        if isinstance(value, list):
            values[option.field] = [str(v) for v in value]
        elif isinstance(value, bool):
            values[option.field] = value
        else:
            values[option.field] = str(value)
    return values


def find_ini(start: Path | None = None) -> IniFile:
    """The configuration file pytest would read when started in ``start`` (default: the current folder)."""
    here = (start or Path.cwd()).resolve()
    pyproject: Path | None = None
    for folder in (here, *here.parents):
        for name, load in _LOADERS:
            path = folder / name
            if not path.is_file():
                continue
            if name == "pyproject.toml" and pyproject is None:
                pyproject = path
            raw = load(path)
            if raw is not None:
                return IniFile(path, folder, _plugin_values(raw))
    if pyproject is not None:
        return IniFile(None, pyproject.parent)
    return IniFile(None, here)
