"""The package's exceptions, beyond the ValueError/FileNotFoundError of bad input to the runner."""

from __future__ import annotations


class BenchmarkError(RuntimeError):
    """A benchmark could not complete: a model copy raised, died or hung.

    The message names the configuration and, where a copy raised, carries the
    copy's own traceback text.
    """

    def __init__(self, message: str, config: dict[str, object] | None = None, *, error_type: str = "",
                 phase: str = "") -> None:
        super().__init__(message)
        self.config = dict(config or {})
        # Where a copy raised: the exception's type name and what the copy was doing.
        self.error_type = error_type
        self.phase = phase


class ModelNotFoundError(ImportError):
    """The model's module or name does not exist (at the revision a copy imports from, say)."""


class DeviceUnavailableError(RuntimeError):
    """The requested device type is not present on this machine."""

    def __init__(self, device_type: str, reason: str) -> None:
        super().__init__(f"device_type={device_type!r} is not available here: {reason}")
        self.device_type = device_type
        self.reason = reason


class SettingsError(ValueError):
    """An option value that cannot be used; ``str()`` reads ``<option>: <message>``.

    ``option`` is what to blame: a flag such as ``--npf-duration``, an ini key such as
    ``npf_duration (ini)`` or a keyword such as ``tolerance``.
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message

    def __reduce__(self) -> tuple[type[SettingsError], tuple[str, str]]:
        return (type(self), (self.option, self.message))
