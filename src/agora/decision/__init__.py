"""The decentralized decision engine: agents propose, consensus orders, rules decide.

Agents (``agora.decision.agents``) watch books, metrics and fills and emit signed
:class:`~agora.core.events.Proposal` values; the consensus layer (``agora.decision.consensus``)
makes every correct replica commit the same ordered log of them; aggregation rules
(``agora.decision.rules``) are pure functions of that log that turn it into
:class:`~agora.core.events.Decision` values with deterministic client order ids. The deterministic
simulator (``agora.decision.sim``) runs whole clusters in one process under injected faults.
Must not import the exchange internals.
"""
