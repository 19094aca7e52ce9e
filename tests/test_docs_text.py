"""The docs are plain text: no control characters from unescaped LaTeX.

A backslash sequence written through a non-raw Python string turns into a
control character (`\\text` into a tab and "ext", `\\rVert` into a carriage
return), and the formula renders broken.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # tab and CR too


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_has_no_control_characters(page):
    with open(page, encoding="utf-8", newline="") as file:  # CRs kept
        text = file.read()
    found = [
        (number, line)
        for number, line in enumerate(text.split("\n"), 1)
        if CONTROL.search(line)
    ]
    assert not found, f"control characters on lines {[n for n, _ in found]}"
