"""The sails.io.js request envelope's helpers read a query and measure nesting as their plain
definitions do, on the common inputs they take shortcuts for and on any other."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from trisails.protocol.virtual import nested_deeper_than, parse_query

_query_text = st.text(st.sampled_from("ab=&%+x1é ;?[]"), max_size=30) | st.text(max_size=30)


def _reference_query(query: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in result:
            previous = result[name]
            result[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[name] = value
    return result


@given(_query_text)
def test_a_query_reads_as_parse_qsl_reads_it_repeated_names_as_lists(query: str) -> None:
    assert parse_query(query) == _reference_query(query)


def test_a_query_without_escapes_reads_the_usual_way() -> None:
    assert parse_query("x=1&y=&z&x=2&w=a=b") == {"x": ["1", "2"], "y": "", "z": "", "w": "a=b"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=2), children, max_size=3),
    max_leaves=20,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(child) for child in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(child) for child in value), default=0)
    return 0


@given(_json, st.integers(0, 6))
def test_nesting_is_measured_as_the_depth_of_lists_and_objects(value: Any, limit: int) -> None:
    assert nested_deeper_than(value, limit) == (_depth(value) > limit)


def test_a_value_nested_far_deeper_than_recursion_allows_is_measured() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert nested_deeper_than(deep, 50) and not nested_deeper_than(deep, 100_001)
