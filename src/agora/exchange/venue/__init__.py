"""The venue on the wire: the exchange core behind real protocols.

``core.VenueCore`` is the single-threaded heart every gateway submits to; ``config`` reads the
venue's TOML. Gateways (OUCH over SoupBinTCP, FIX 4.4) and the ITCH 5.0 / MoldUDP64 feed listen to
its events.
"""
