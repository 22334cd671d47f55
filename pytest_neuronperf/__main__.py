"""``python -m pytest_neuronperf``: the ``npf`` command."""

from __future__ import annotations

from pytest_neuronperf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
