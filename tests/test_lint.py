"""The tree stays ruff clean, and logic never reads the wall clock directly."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    result = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_wall_clock_in_logic():
    """Only agora.core.clock and the benchmark/CLI layers may read the host clock."""
    allowed = {"core/clock.py"}
    pattern = re.compile(r"\btime\.(time|time_ns|monotonic|monotonic_ns)\(")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("core", "exchange")
        for path in (ROOT / "src" / "agora" / package).rglob("*.py")
        if str(path.relative_to(ROOT / "src" / "agora")) not in allowed
        and pattern.search(path.read_text())
    ]
    assert offenders == []


# DESIGN.md: dependencies point down; core depends on nothing of ours, nothing imports cli.
_ALLOWED_IMPORTS = {
    "core": {"core"},
    "protocols": {"core", "protocols"},
    "exchange": {"core", "exchange", "protocols"},
    "feed": {"core", "protocols", "feed"},
    "decision": {"core", "protocols", "feed", "decision"},
    "trading": {"core", "protocols", "feed", "decision", "trading"},
    "bench": {"core", "protocols", "exchange", "feed", "decision", "trading", "bench"},
    "testing": {"core", "exchange", "feed", "bench", "testing"},
}


def test_packages_import_only_downwards():
    pattern = re.compile(r"^\s*(?:from|import)\s+agora\.(\w+)", re.M)
    wrong = []
    for package, allowed in _ALLOWED_IMPORTS.items():
        for path in (ROOT / "src" / "agora" / package).rglob("*.py"):
            for target in pattern.findall(path.read_text()):
                if target not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)} imports agora.{target}")
    assert wrong == []
