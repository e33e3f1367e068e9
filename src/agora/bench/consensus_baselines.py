"""The baselines of ``agora bench consensus``: PySyncObj (Raft in Python, from PyPI) replicating
the same decisions, and etcd (Debian's etcd-server) puts through its v3 JSON gateway, each n = 3
on loopback. Each answers a dict of figures, or a string saying why it was skipped or failed.

``python -m agora.bench.consensus_baselines pysyncobj-node INDEX ADDRS REQUESTS OUT`` is one
PySyncObj member (the benchmark starts three).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agora.bench.latency import percentiles
from agora.decision.transport.cluster import free_udp_ports

# PySyncObj's defaults (50 ms tick, 100 ms append period) give ~100 ms commits; tuned for latency:
PYSYNCOBJ_TUNING = {"autoTickPeriod": 0.001, "appendEntriesPeriod": 0.001}


def pysyncobj_node(index: int, addrs: list[str], requests: int, out: Path) -> None:
    """One PySyncObj member; whichever member leads runs the load and writes ``out``."""
    import threading

    from pysyncobj import SyncObj, SyncObjConf, SyncObjException, replicated

    class Log(SyncObj):
        def __init__(self) -> None:
            super().__init__(addrs[index], [a for a in addrs if a != addrs[index]],
                             SyncObjConf(dynamicMembershipChange=False, **PYSYNCOBJ_TUNING))
            self.count = 0

        @replicated
        def append(self, payload: bytes) -> int:
            self.count += 1
            return self.count

    log = Log()
    print("ready", flush=True)
    while True:
        while log._getLeader() is None or log._getLeader() != log.selfNode:
            time.sleep(0.05)
            if out.exists():
                time.sleep(3600)  # another member leads; wait to be killed
        samples = []
        try:
            for i in range(100 + requests):
                t0 = time.perf_counter_ns()
                log.append(b"decision-%06d" % i, sync=True, timeout=10)
                if i >= 100:
                    samples.append(time.perf_counter_ns() - t0)
            break
        except SyncObjException:  # leadership moved mid-run (on a noisy host): whoever leads
            continue  # now measures from the start (this member waits again, or leads again)
    done = threading.Event()
    left = [requests]

    def applied(result: object, error: object) -> None:
        left[0] -= 1
        if left[0] == 0:
            done.set()

    t0 = time.perf_counter_ns()
    for i in range(requests):
        log.append(b"burst-%06d" % i, callback=applied)
    done.wait(timeout=60)
    span = time.perf_counter_ns() - t0
    p50, p99, _ = percentiles(samples)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"p50": p50, "p99": p99,
                               "per_s": (requests - left[0]) / (span / 1e9),
                               "mode": "sync=True at the leader; throughput: async burst"}))
    os.replace(tmp, out)
    time.sleep(3600)


def pysyncobj(requests: int, root: Path) -> dict | str:
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        return "pysyncobj is not installed (pip install 'pysyncobj>=0.3.12')"
    addrs = [f"127.0.0.1:{p}" for p in free_udp_ports(3)]  # TCP; freshly free ports
    out = root / "pysyncobj.json"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "agora.bench.consensus_baselines", "pysyncobj-node", str(i),
         ",".join(addrs), str(requests), str(out)], stdout=subprocess.DEVNULL)
        for i in range(3)]
    try:
        deadline = time.monotonic() + 180
        while not out.exists():
            if time.monotonic() > deadline:
                return "timed out after 180 s"
            if any(p.poll() is not None for p in procs):
                return "a PySyncObj member exited early"
            time.sleep(0.1)
        return json.loads(out.read_text())
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def etcd(requests: int, root: Path) -> dict | str:
    etcd = shutil.which("etcd")
    if etcd is None:
        return "etcd is not installed (apt-get install -y etcd-server)"
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else root
    data = Path(tempfile.mkdtemp(prefix="agora-etcd-", dir=base))
    ports = free_udp_ports(6)
    peers = ",".join(f"e{i}=http://127.0.0.1:{ports[3 + i]}" for i in range(3))
    procs = [subprocess.Popen(
        [etcd, "--name", f"e{i}", "--data-dir", str(data / f"e{i}"),
         "--listen-client-urls", f"http://127.0.0.1:{ports[i]}",
         "--advertise-client-urls", f"http://127.0.0.1:{ports[i]}",
         "--listen-peer-urls", f"http://127.0.0.1:{ports[3 + i]}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports[3 + i]}",
         "--initial-cluster", peers, "--initial-cluster-state", "new",
         "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(3)]
    try:
        return _etcd_load(ports[:3], requests)
    except (OSError, RuntimeError, http.client.HTTPException) as exc:
        return f"failed: {exc}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def _etcd_post(conn: http.client.HTTPConnection, path: str, body: dict) -> dict:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status} {data[:200]!r}")
    return json.loads(data)


def _etcd_load(client_ports: list[int], requests: int) -> dict:
    deadline = time.monotonic() + 30
    leader_port = None
    while leader_port is None:
        for port in client_ports:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                status = _etcd_post(conn, "/v3/maintenance/status", {})
                conn.close()
            except (OSError, RuntimeError, http.client.HTTPException):
                continue
            if status.get("leader") and status.get("leader") == status["header"].get("member_id"):
                leader_port = port
        if leader_port is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no leader within 30 s")
            time.sleep(0.2)
    conn = http.client.HTTPConnection("127.0.0.1", leader_port, timeout=10)
    samples = []
    for i in range(200 + requests):
        body = {"key": base64.b64encode(b"k%d" % (i % 1000)).decode(),
                "value": base64.b64encode(b"decision-%06d" % i).decode()}
        t0 = time.perf_counter_ns()
        _etcd_post(conn, "/v3/kv/put", body)
        if i >= 200:
            samples.append(time.perf_counter_ns() - t0)
    conn.close()
    p50, p99, _ = percentiles(samples)
    return {"p50": p50, "p99": p99, "per_s": len(samples) / (sum(samples) / 1e9),
            "mode": "one HTTP keep-alive client at the leader, closed loop"}


# ---------------------------------------------------------------- report


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "pysyncobj-node":
        pysyncobj_node(int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]),
                       Path(sys.argv[5]))
    else:
        raise SystemExit("usage: python -m agora.bench.consensus_baselines pysyncobj-node "
                         "INDEX ADDRS REQUESTS OUT")
