"""Every ```python block of the structured-concurrency guide runs, as its own program, and exits 0.

The guide promises that each such block is a complete program. This keeps the promise: a block that
stops running (an API changed, an assertion in it no longer holds) fails here. A block that is not meant
to run is fenced ```python-norun and is not extracted at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide" / "structured-concurrency.md"
TIMEOUT = 20  # seconds per block; each is written to finish in about one

# A fence that is exactly ```python on its own line; ```python-norun and other languages do not match.
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the opening fence, code)`` for each ```python block in ``text``."""
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in BLOCK.finditer(text)]


BLOCKS = python_blocks(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_has_runnable_blocks() -> None:
    assert len(BLOCKS) >= 8, "the guide's ```python blocks were not found; was a fence renamed?"


def test_norun_blocks_are_not_extracted() -> None:
    text = "```python-norun\nraise SystemExit(1)\n```\n\n```python\nprint('ok')\n```\n\n```text\nx\n```\n"
    assert python_blocks(text) == [(5, "print('ok')\n")]


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line-{line}" for line, _ in BLOCKS])
def test_block_runs(line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / f"guide_line_{line}.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        result = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the block at {GUIDE.name}:{line} did not finish within {TIMEOUT} s\n{error.stdout}\n{error.stderr}")
    assert result.returncode == 0, (
        f"the block at {GUIDE.name}:{line} exited with {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
