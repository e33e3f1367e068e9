"""The shared vocabulary: fixed-point prices, enums, clocks, events, errors.

Knows nothing of the rest of agora; every other package depends on it.
"""
