"""One job at a time in a thread of its own, for I/O a caller's step must not wait on.

An fsync of a record, a compaction's marker and hole punching: each takes milliseconds on a
disk, and on a replica's step that is a stall. The job runs in a daemon thread; a new one waits
for the last (they stay in order), and ``wait`` comes before whatever the job's file
descriptors must not outlive (a close, a load).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundJob:
    """At most one job of ``name`` running at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, target: Callable[..., None], *args: object) -> None:
        """Run ``target(*args)`` in a thread, once the job before it is done."""
        self.wait()
        self._thread = threading.Thread(target=target, args=args, name=self.name, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Until the job in flight, if any, is done."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
