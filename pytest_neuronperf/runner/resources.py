"""Machine-wide CPU and memory utilisation sampled from /proc while a window is open."""

from __future__ import annotations

import threading


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return idle, sum(values)


def _mem_percent() -> float | None:
    info: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    total, available = info.get("MemTotal"), info.get("MemAvailable")
    if not total or available is None:
        return None
    return 100.0 * (1.0 - available / total)


class ResourceSampler:
    """Samples every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.cpu: list[float] = []
        self.mem: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="npf-resources", daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = _cpu_times()
        while not self._stop.wait(self.interval):
            now = _cpu_times()
            if now is not None and last is not None and now[1] > last[1]:
                self.cpu.append(100.0 * (1.0 - (now[0] - last[0]) / (now[1] - last[1])))
            last = now
            mem = _mem_percent()
            if mem is not None:
                self.mem.append(mem)

    def summary(self) -> dict[str, float | None]:
        def avg(xs: list[float]) -> float | None:
            return round(sum(xs) / len(xs), 2) if xs else None

        def peak(xs: list[float]) -> float | None:
            return round(max(xs), 2) if xs else None

        return {
            "cpu_percent_avg": avg(self.cpu),
            "cpu_percent_peak": peak(self.cpu),
            "mem_percent_avg": avg(self.mem),
            "mem_percent_peak": peak(self.mem),
        }
