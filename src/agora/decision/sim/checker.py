"""The safety and liveness checker: it sees only what replicas emit and clients submit.

It never reads replica state. Inputs: every request a client submits, every ``Committed`` output
of every replica incarnation, every reply a client accepts. Properties:

* **order / exactly once**: each incarnation emits consecutive indices from its application's
  durable point + 1 (no gap, no repeat);
* **agreement**: every output for one index is identical (entry, view, deadline verdict): so
  total order and prefix consistency across replicas and across restarts of one replica;
* **validity**: a committed client entry was submitted with exactly that payload; a no-op
  (client 0) is empty and never abandoned;
* **integrity**: a ``(client, request number)`` sits at one index only;
* **deadlines**: a request without a budget is never abandoned (agreement covers the verdict);
* **replies** match the committed entry they name (checked when the index commits: a backup
  acknowledgement may settle a request before any replica emits it; after heal, a reply whose
  index never committed is a failure);
* **liveness** (after heal): every submitted request committed, every replica emitted every
  committed index, no client still waiting.

Failures are strings; the first ``failures_max`` are kept.
"""

from __future__ import annotations

from agora.decision.consensus.messages import Committed, Reply


def describe(item: Committed) -> str:
    """A short form of an output for failure messages."""
    return (f"(view {item.view}, client {item.client_id}, request {item.request_number}, "
            f"{len(item.payload)} B, abandoned {item.abandoned})")


class Checker:
    def __init__(self, *, failures_max: int = 20) -> None:
        self.failures: list[str] = []
        self.failures_max = failures_max
        self.submitted: dict[tuple[int, int], tuple[bytes, int]] = {}
        self.committed: dict[int, Committed] = {}
        self.by_request: dict[tuple[int, int], int] = {}
        self.next_index: dict[int, int] = {}  # replica -> next index its incarnation must emit
        self.replies = 0
        self.early_replies: dict[int, list[Reply]] = {}

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, text: str) -> None:
        if len(self.failures) < self.failures_max:
            self.failures.append(text)

    def on_submit(self, client_id: int, request_number: int, payload: bytes,
                  budget_ns: int) -> None:
        self.submitted[(client_id, request_number)] = (payload, budget_ns)

    def on_start(self, replica: int, applied_index: int) -> None:
        """A (re)started incarnation will emit from ``applied_index + 1``."""
        self.next_index[replica] = applied_index + 1

    def on_committed(self, replica: int, item: Committed) -> None:
        expected = self.next_index.get(replica, 1)
        if item.index != expected:
            self.fail(f"order: replica {replica} emitted index {item.index}, expected {expected}")
        self.next_index[replica] = item.index + 1
        first = self.committed.setdefault(item.index, item)
        if first != item:
            self.fail(f"agreement: index {item.index}: replica {replica} committed "
                      f"{describe(item)}, another replica {describe(first)}")
            return
        if first is item:
            self._check_new(item)
            for reply in self.early_replies.pop(item.index, ()):
                self._check_reply(reply, item)

    def _check_new(self, item: Committed) -> None:
        key = (item.client_id, item.request_number)
        if item.client_id == 0:
            if item.payload or item.request_number or item.abandoned:
                self.fail(f"validity: no-op at {item.index} is not empty: {describe(item)}")
            return
        submitted = self.submitted.get(key)
        if submitted is None:
            self.fail(f"validity: index {item.index} commits unsubmitted request {key}")
            return
        payload, budget = submitted
        if payload != item.payload:
            self.fail(f"validity: index {item.index} payload differs from request {key}")
        if item.abandoned and budget == 0:
            self.fail(f"deadline: index {item.index} abandons {key}, which had no budget")
        index = self.by_request.setdefault(key, item.index)
        if index != item.index:
            self.fail(f"integrity: request {key} committed at {index} and at {item.index}")

    def on_reply(self, reply: Reply) -> None:
        """A reply a client accepted. Backup acknowledgements can settle a request before any
        replica emits its index, so a reply naming an index nobody committed yet waits for it;
        :meth:`unconfirmed` lists those that never were (a failure once the run has healed)."""
        self.replies += 1
        entry = self.committed.get(reply.index)
        if entry is None:
            self.early_replies.setdefault(reply.index, []).append(reply)
        else:
            self._check_reply(reply, entry)

    def unconfirmed(self) -> list[Reply]:
        """Accepted replies whose index no replica has committed."""
        return [reply for replies in self.early_replies.values() for reply in replies]

    def _check_reply(self, reply: Reply, entry: Committed) -> None:
        if (entry.client_id, entry.request_number, entry.abandoned) != (
                reply.client_id, reply.request_number, reply.abandoned):
            self.fail(f"reply: client {reply.client_id} request {reply.request_number} told "
                      f"index {reply.index} abandoned {reply.abandoned}, committed there: "
                      f"{describe(entry)}")

    def converged(self, replicas: int, clients_busy: bool) -> bool:
        """Liveness reached: all requests committed and emitted by every replica."""
        if clients_busy or len(self.by_request) < len(self.submitted) or self.early_replies:
            return False
        top = max(self.committed, default=0)
        return all(self.next_index.get(r, 1) == top + 1 for r in range(replicas))

    def liveness_report(self, replicas: int) -> str:
        missing = sorted(set(self.submitted) - set(self.by_request))[:5]
        top = max(self.committed, default=0)
        behind = {r: self.next_index.get(r, 1) - 1 for r in range(replicas)
                  if self.next_index.get(r, 1) != top + 1}
        early = self.unconfirmed()[:3]
        return (f"liveness: after heal, requests not committed {missing} "
                f"({len(self.submitted) - len(self.by_request)} in all); highest index {top}; "
                f"replicas behind (last emitted) {behind}; replies naming an index nobody "
                f"committed {early}")

    def deadline_figures(self) -> tuple[int, int]:
        """(requests with a budget, of which abandoned) over the committed log."""
        budgeted = abandoned = 0
        for key, index in self.by_request.items():
            if self.submitted[key][1] > 0:
                budgeted += 1
                abandoned += self.committed[index].abandoned
        return budgeted, abandoned
