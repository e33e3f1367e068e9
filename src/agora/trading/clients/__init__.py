"""Clients of venues: order entry (OUCH) and market data (ITCH over MoldUDP64)."""
