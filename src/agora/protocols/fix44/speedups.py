"""The optional C hot paths of the FIX codec (``_speedups.c``), or None where they are absent.

``setup.py`` builds them where a C compiler exists; without one, or with the environment
variable ``AGORA_PURE_PYTHON`` set (to measure or test the Python fast paths), ``ext`` is None
and the Python fast paths run. Callers read ``speedups.ext`` at each call, so a test can swap it.
Either way the answers are the same: the C functions handle only the common message and return
None for anything else, which the Python paths then decide.
"""

from __future__ import annotations

import os
from types import ModuleType


def load() -> ModuleType | None:
    if os.environ.get("AGORA_PURE_PYTHON"):
        return None
    try:
        from agora.protocols.fix44 import _speedups
    except ImportError:
        return None
    return _speedups


ext: ModuleType | None = load()


def implementation() -> str:
    """``"c"`` or ``"python"``: which fast paths run (benchmarks report it)."""
    return "python" if ext is None else "c"
