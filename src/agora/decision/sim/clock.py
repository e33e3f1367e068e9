"""Per-replica clocks of the simulated world: offset, drift and jumps over the true time.

``local(true) = offset + true + true * drift_ppm / 10**6 + jumps``. The replicas only ever see
their own ``local`` readings; the simulator keeps the true time. Jumps may go backwards, so a
replica must cope with a clock that is not monotonic.
"""

from __future__ import annotations


class DriftClock:
    __slots__ = ("drift_ppm", "jumps_ns", "offset_ns")

    def __init__(self, offset_ns: int = 0, drift_ppm: int = 0) -> None:
        self.offset_ns = offset_ns
        self.drift_ppm = drift_ppm
        self.jumps_ns = 0

    def local(self, true_ns: int) -> int:
        return self.offset_ns + true_ns + true_ns * self.drift_ppm // 1_000_000 + self.jumps_ns

    def jump(self, delta_ns: int) -> None:
        self.jumps_ns += delta_ns
