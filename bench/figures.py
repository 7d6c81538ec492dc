"""What every bench states beside its figures, stated one way: the machine it ran on and how
busy that was, and how much memory a process holds. Only the standard library: any bench, and
bench/local_quality.py's worker before it imports the product, may import it."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict:
    """The machine, and its load average as the bench starts: other work skews every figure."""
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's memory in MB, from Linux's /proc: VmRSS resident now, VmHWM at its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise LookupError(f"no {field} in /proc/{pid}/status")
