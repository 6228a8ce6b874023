"""Every ```python block of the guides runs, as its own program, and prints what the guide says it prints.

The guides promise that each such block is a complete program and that the ```text block right after it
(before any other code block) is its output. This keeps both promises: a block that stops running, or
whose output drifts from the text, fails here. A block that is not meant to run is fenced
```python-norun and is not extracted at all.

Outputs are compared by shape, not by value: line for line, where every number in the expected text
matches any number (times and counts differ between machines) and ``…`` matches anything on its line,
or, on a line of its own, any number of lines (a traceback). stderr is merged into stdout, in order, as
a reader running the program in a terminal would see it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "docs" / "guide" / "structured-concurrency.md", ROOT / "docs" / "guide" / "asyncio-to-trio.md"]
TIMEOUT = 20  # seconds per block; each is written to finish in a second or two

# A fence that is exactly ```python on its own line; ```python-norun and other languages do not match.
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# The first fenced block after a program: its expected output when it is ```text.
NEXT_FENCE = re.compile(r"^```(\S*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``(line of the opening fence, code, expected output or None)`` for each ```python block."""
    found = []
    for match in BLOCK.finditer(text):
        following = NEXT_FENCE.search(text, match.end())
        expected = following.group(2) if following is not None and following.group(1) == "text" else None
        found.append((text.count("\n", 0, match.start()) + 1, match.group(1), expected))
    return found


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = []
    position = 0
    for token in re.finditer(r"…|\d+(?:\.\d+)?", expected):
        parts.append(re.escape(expected[position : token.start()]))
        parts.append(".*?" if token.group() == "…" else r"-?\d+(?:\.\d+)?(?:e-?\d+)?")
        position = token.end()
    parts.append(re.escape(expected[position:]))
    return re.compile("".join(parts))


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` has the shape of ``expected`` (see the module docstring)."""
    want = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    got = [line.rstrip() for line in actual.rstrip("\n").split("\n")] if actual.strip() else []

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i] == "…":  # any number of lines, as few as will do
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and _line_pattern(want[i]).fullmatch(got[j]) is not None and match(i + 1, j + 1)

    return match(0, 0)


BLOCKS = [
    pytest.param(guide, line, code, expected, id=f"{guide.stem}-line-{line}")
    for guide in GUIDES
    for line, code, expected in python_blocks(guide.read_text(encoding="utf-8"))
]


def test_the_guides_have_runnable_blocks() -> None:
    counts = {guide.name: sum(1 for block in BLOCKS if block.values[0] == guide) for guide in GUIDES}
    assert counts["structured-concurrency.md"] >= 15, counts


def test_norun_blocks_are_not_extracted_and_text_blocks_are_outputs() -> None:
    text = "```python-norun\nraise SystemExit(1)\n```\n\n```python\nprint('ok')\n```\n\nIt prints:\n\n```text\nok\n```\n"
    assert python_blocks(text) == [(5, "print('ok')\n", "ok\n")]
    assert python_blocks("```python\npass\n```\n```python\npass\n```\n```text\nx\n```\n")[0][2] is None


def test_outputs_are_compared_by_shape() -> None:
    assert output_matches("took 0.5 s, 3 left\n", "took 0.61 s, 12 left\n")
    assert output_matches("session …: closed\n", "session Ab_3-x: closed\n")
    assert output_matches("Traceback:\n…\nValueError: x\nafter\n", "Traceback:\n  a\n  b\nValueError: x\nafter\n")
    assert not output_matches("a\nb\n", "a\n")
    assert not output_matches("took 0.5 s\n", "took a while\n")
    assert not output_matches("main\n    child\n", "main\n        child\n")  # indentation is shape


@pytest.mark.parametrize(("guide", "line", "code", "expected"), BLOCKS)
def test_block_prints_what_the_guide_says(guide: Path, line: int, code: str, expected: str | None, tmp_path: Path) -> None:
    assert expected is not None, f"the block at {guide.name}:{line} has no ```text block after it to show its output"
    script = tmp_path / f"guide_line_{line}.py"
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as they would in a terminal
        "PYTHONWARNINGS": "default",
    }
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the block at {guide.name}:{line} did not finish within {TIMEOUT} s\n{error.stdout}")
    assert result.returncode == 0, f"the block at {guide.name}:{line} exited with {result.returncode}\n{result.stdout}"
    assert output_matches(expected, result.stdout), (
        f"the block at {guide.name}:{line} printed something else than the guide shows\n"
        f"--- the guide\n{expected}--- the program\n{result.stdout}"
    )
