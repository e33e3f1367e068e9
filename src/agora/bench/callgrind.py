"""Instructions counted by callgrind: a figure that moves only when the code does.

Timings on a shared VM move by 20% from one run to the next; the instructions a program executes
move only with the code (and a little with hash randomisation), so two builds compare in one run
each. Instructions are not time (a cache miss or a system call costs more than it counts): these
figures steer work on a hot path, beside the timed benchmarks, never instead of them.

The benchmark scripts run a Python module under ``valgrind --tool=callgrind`` at two sizes and
divide the difference by the difference in work, so start-up and imports cancel out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Sequence

COLLECTED = re.compile(r"Collected : (\d+)")


def available() -> bool:
    """Whether valgrind is installed (Debian: ``apt-get install valgrind``)."""
    return shutil.which("valgrind") is not None


def instructions(module: str, args: Sequence[str]) -> int:
    """Instructions executed by ``python -m module args...`` (which must succeed)."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, "-m", module, *args]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    found = COLLECTED.search(run.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {run.stderr[-500:]}")
    return int(found.group(1))
