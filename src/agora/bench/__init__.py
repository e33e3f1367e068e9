"""Benchmarks behind ``agora bench``: seeded workloads, the agora path and its baselines.

Each benchmark prints a table and ends with one ``RESULT {json}`` line (DESIGN.md).
"""
