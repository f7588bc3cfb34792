"""Typed sessions are checked: mypy --strict accepts tests/typing/typed_usage.py and reports
exactly the errors that tests/typing/typed_misuse.py marks with ``# E: <code>``."""

from __future__ import annotations

import pathlib
import re

import pytest
from mypy import api

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
_EXPECTED = re.compile(r"#\s*E:\s*(?P<code>[a-z-]+)\s*$")
_REPORTED = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")

pytestmark = pytest.mark.timeout(300)


def _mypy(path: pathlib.Path) -> tuple[str, int]:
    stdout, stderr, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--strict", "--no-pretty", str(path)]
    )
    assert not stderr, stderr
    return stdout, status


def _errors(stdout: str) -> set[tuple[int, str]]:
    found = set()
    for line in stdout.splitlines():
        match = _REPORTED.match(line)
        if match:
            found.add((int(match["line"]), match["code"]))
    return found


def test_correct_typed_usage_passes_mypy_strict() -> None:
    stdout, status = _mypy(HERE / "typed_usage.py")
    assert status == 0, stdout


def test_each_wrong_key_or_value_type_is_reported_on_its_line() -> None:
    path = HERE / "typed_misuse.py"
    expected = {
        (number, match["code"])
        for number, text in enumerate(path.read_text().splitlines(), start=1)
        if (match := _EXPECTED.search(text))
    }
    assert len(expected) >= 9
    stdout, status = _mypy(path)
    assert status == 1
    assert _errors(stdout) == expected, stdout
