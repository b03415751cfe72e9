"""M-Pesa number normalisation, property-based: every accepted spelling, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tuktuk.fleet.phone import InvalidPhoneNumber, is_canonical_msisdn, normalize_msisdn

prefixes = st.sampled_from(["7", "1"])
suffixes = st.text(alphabet="0123456789", min_size=8, max_size=8)
separators = st.sampled_from(["", "", " ", "-", " - ", "  "])


def spaced(text: str, gaps: list[str]) -> str:
    """Put a separator after each character, as people group digits when they type."""
    return "".join(char + gap for char, gap in zip(text, gaps, strict=False)) + text[len(gaps) :]


def the_four_forms(prefix: str, suffix: str) -> list[str]:
    return [
        f"+254{prefix}{suffix}",
        f"254{prefix}{suffix}",
        f"0{prefix}{suffix}",
        f"(+254) {prefix}{suffix}",
    ]


@given(prefix=prefixes, suffix=suffixes)
@example(prefix="7", suffix="00000000")
@example(prefix="1", suffix="99999999")
def test_every_form_normalises_to_the_same_canonical_number(prefix: str, suffix: str) -> None:
    canonical = f"254{prefix}{suffix}"
    assert {normalize_msisdn(form) for form in the_four_forms(prefix, suffix)} == {canonical}
    assert is_canonical_msisdn(canonical)


@given(
    prefix=prefixes,
    suffix=suffixes,
    form=st.integers(min_value=0, max_value=3),
    gaps=st.lists(separators, max_size=14),
    padding=st.sampled_from(["", " ", "\t", " \n"]),
)
def test_spaces_and_dashes_are_ignored(
    prefix: str, suffix: str, form: int, gaps: list[str], padding: str
) -> None:
    raw = the_four_forms(prefix, suffix)[form]
    assert normalize_msisdn(padding + spaced(raw, gaps) + padding) == f"254{prefix}{suffix}"


@given(prefix=prefixes, suffix=suffixes)
def test_normalising_is_idempotent(prefix: str, suffix: str) -> None:
    once = normalize_msisdn(f"0{prefix}{suffix}")
    assert normalize_msisdn(once) == once


def refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_msisdn(raw)


@given(
    prefix=prefixes,
    digits=st.text(alphabet="0123456789", max_size=14).filter(lambda d: len(d) != 8),
    form=st.sampled_from(["+254", "254", "0"]),
)
def test_wrong_length_is_refused(prefix: str, digits: str, form: str) -> None:
    refused(f"{form}{prefix}{digits}")


@given(
    country=st.sampled_from(["255", "256", "250", "251", "1", "44", "27", "2547"]),
    national=st.text(alphabet="0123456789", min_size=9, max_size=9),
    plus=st.sampled_from(["+", ""]),
)
def test_other_country_codes_are_refused(country: str, national: str, plus: str) -> None:
    # "2547" followed by 9 digits: a Kenyan number with one digit too many.
    refused(f"{plus}{country}{national}")


@given(
    prefix=st.sampled_from("0234568"),
    suffix=suffixes,
    form=st.sampled_from(["+254", "254", "0"]),
)
def test_numbers_that_are_not_mobile_are_refused(prefix: str, suffix: str, form: str) -> None:
    refused(f"{form}{prefix}{suffix}")


@given(
    prefix=prefixes,
    suffix=suffixes,
    letter=st.characters(categories=["Lu", "Ll"]),
    at=st.integers(min_value=0, max_value=10),
)
def test_letters_are_refused(prefix: str, suffix: str, letter: str, at: int) -> None:
    raw = f"0{prefix}{suffix}"
    refused(raw[:at] + letter + raw[at:])


@pytest.mark.parametrize("raw", ["", "   ", "0", "+", "254", "07", "phone", "7", "0712 345 67"])
def test_nonsense_is_refused(raw: str) -> None:
    refused(raw)


@given(prefix=prefixes, suffix=st.text(alphabet="١٢٣٤٥٦٧٨٩٠１２３", min_size=8, max_size=8))
def test_non_ascii_digits_are_refused(prefix: str, suffix: str) -> None:
    refused(f"0{prefix}{suffix}")
