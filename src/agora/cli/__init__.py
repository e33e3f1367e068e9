"""The ``agora`` command line. Nothing imports this package."""
