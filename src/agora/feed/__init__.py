"""Feed handling: ITCH 5.0 files and streams, LOBSTER data, full-depth book reconstruction.

Turns raw market data into L3 books (every order, in queue order), L2/L1 views, normalized core
events and integrity reports. Must not import the exchange internals: the feed knows the venue
only through the protocols it publishes.
"""
