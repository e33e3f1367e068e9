"""Wire codecs and session layers of real industry protocols.

``itch50`` (NASDAQ TotalView-ITCH 5.0), ``moldudp64``, ``soupbintcp`` (4.0), ``ouch50`` (NASDAQ
OUCH 5.0) and ``fix44`` (FIX 4.4). Pure encode/decode and session state machines, built from the
field tables in shared/specs; they depend only on ``agora.core`` and know nothing of the engine.
"""
