"""The gate: lint, format and types, as configured in pyproject.toml and run by `make lint`.

The fourth check, the import contracts (lint-imports), is tests/test_layers.py's. Each runs the tool from this
virtualenv on the whole tree and fails with its own output.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

CHECKS = {
    "ruff-lint": ["ruff", "check", "."],
    "ruff-format": ["ruff", "format", "--check", "."],
    # What pyproject.toml's [tool.mypy] lists: every module of the apps, with no baseline.
    "mypy": ["mypy"],
}


@pytest.mark.parametrize("check", CHECKS)
def test_the_check_passes(check):
    tool, *args = CHECKS[check]
    result = subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(CHECKS[check])} failed:\n{result.stdout}{result.stderr}"


def test_the_stylesheets_close_every_block():
    """A merge once shared one `}` between two appended sections: every rule after an unclosed @media applied only
    at a phone's width, and no test saw it. Braces outside comments must balance, never going below zero."""
    import re

    for sheet in sorted((ROOT / "static").rglob("*.css")):
        text = re.sub(r"/\*.*?\*/", "", sheet.read_text(), flags=re.S)
        depth = 0
        for number, line in enumerate(text.split("\n"), 1):
            depth += line.count("{") - line.count("}")
            assert depth >= 0, f"{sheet.relative_to(ROOT)}:{number}: a '}}' closes nothing"
        assert depth == 0, f"{sheet.relative_to(ROOT)}: {depth} block(s) left open"
