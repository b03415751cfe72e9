"""mpesa.strict_json: the walk for lone surrogates is skipped only for text that cannot hold
one, so the answer is the full walk's for every body (hypothesis)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tuktuk.mpesa import strict_json

# ASCII, a pair's halves and lone ones, a character beyond the BMP (a proper pair when escaped).
_CHARACTERS = st.one_of(
    st.characters(min_codepoint=32, max_codepoint=126),
    st.characters(min_codepoint=0xD7FE, max_codepoint=0xE001, categories=["Cs", "Co", "Lo"]),
    st.just("\U0001f600"),
    st.just("\\"),
)
_TEXT = st.text(_CHARACTERS, max_size=6)
_VALUES = st.recursive(
    st.one_of(_TEXT, st.integers(-5, 5)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_TEXT, children, max_size=3)
    ),
    max_leaves=8,
)


def _lone(value: Any) -> bool:
    if isinstance(value, str):
        return strict_json.has_lone_surrogate(value)
    if isinstance(value, list):
        return any(map(_lone, value))
    if isinstance(value, dict):
        return any(_lone(k) or _lone(v) for k, v in value.items())
    return False


@given(value=st.dictionaries(_TEXT, _VALUES, max_size=4), ascii_only=st.booleans())
def test_a_body_is_refused_exactly_when_it_holds_a_lone_surrogate(
    value: dict[str, Any], ascii_only: bool
) -> None:
    # ensure_ascii: every surrogate written as an escape (what arrives on the wire); without
    # it, raw in the text (what a caller holding a str could pass).
    text = json.dumps(value, ensure_ascii=ascii_only)
    # What the text holds once decoded: a high and a low half side by side in `value` are
    # written as two escapes, which decode to one character beyond the BMP (not lone).
    lone = _lone(json.loads(text))
    try:
        strict_json.loads(text)
    except strict_json.JsonRejected as rejection:
        assert lone, rejection.reason
        assert "lone surrogate" in rejection.reason
    else:
        assert not lone


def test_an_escaped_pair_is_one_character_and_a_raw_pair_is_two_lone_halves() -> None:
    # The example hypothesis found: halves side by side, escaped on the wire, are a pair.
    value = {"\ud800\udc00": []}
    assert strict_json.loads(json.dumps(value, ensure_ascii=True)) == {"\U00010000": []}
    try:
        strict_json.loads(json.dumps(value, ensure_ascii=False))
    except strict_json.JsonRejected as rejection:
        assert "lone surrogate" in rejection.reason
    else:
        raise AssertionError("raw halves in the text were taken for a character")
