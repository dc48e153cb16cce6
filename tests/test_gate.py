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
