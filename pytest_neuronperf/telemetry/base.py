"""What a backend's window telemetry gives: the protocol the orchestrator reads."""

from __future__ import annotations

from typing import Any, Protocol


class WindowTelemetry(Protocol):
    """What a backend's telemetry gives for one window: used as ``with telemetry: <window>``."""

    note: str | None

    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...

    def fields(self) -> dict[str, Any]:
        """The window's report fields (device latency, utilisation, memory, counters)."""

    def invalid_reason(self) -> str | None:
        """Why the window is no measurement (device errors, failed executions); None when it is one."""
