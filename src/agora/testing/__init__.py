"""Test support shipped with agora: drivers for end-to-end and crash tests."""
