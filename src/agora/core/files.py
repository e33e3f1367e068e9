"""Durable whole-file replacement, for state that is rewritten rather than appended to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def remove_leftovers(path: str | os.PathLike[str]) -> None:
    """Remove the temporary files that replacements of ``path`` left when a crash cut them
    short (a file that is replaced again and again would otherwise collect them)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def replace_durably(path: str | os.PathLike[str], data: bytes, *, sync: bool = True) -> None:
    """Make ``path`` hold ``data``, surviving a crash at any point as either the old file or the
    new one: a temporary file in the same directory, fsync, rename over ``path``, then fsync of
    the directory so that the rename itself is durable. ``sync=False`` skips both fsyncs: still
    whole or old after a process crash, but a power cut may keep either (for state whose policy
    does not promise to survive one)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not sync:
        return
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
