"""agora: a Python-first high-frequency trading stack.

Packages (see DESIGN.md): ``core`` (vocabulary), ``exchange`` (matching engine, risk,
sequencer, journal), ``cli`` (the ``agora`` command). Dependencies point down that list.
"""

__version__ = "0.1.0"
