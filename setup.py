"""The optional C hot paths (everything else is in pyproject.toml).

``optional=True``: where no C compiler is found the install goes on without them and the pure
Python fast paths run (``agora.protocols.fix44.speedups`` says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "agora.protocols.fix44._speedups",
            ["src/agora/protocols/fix44/_speedups.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
