"""The venue: order books, matching engine, exchange risk, sequencer and journal.

Owns everything between a decoded order-entry command and the events it causes. Must not know
about agents, the pipeline or trading strategies. The engine is pure (commands in, events out);
files and clocks live in the sequencer and journal.
"""
