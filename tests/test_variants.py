import pytest

from qphy.errors import ConfigError
from qphy.variants import MAX_BITS, MIN_BITS, Bits, parse_bits, variant_name

VALID = [f"w{w}a{a}" for w in range(MIN_BITS, MAX_BITS + 1) for a in range(MIN_BITS, MAX_BITS + 1)]


@pytest.mark.parametrize("tag", VALID)
def test_parse_valid_roundtrip(tag):
    assert parse_bits(tag).tag == tag


@pytest.mark.parametrize(
    "tag, match",
    [
        ("w9a4", "weight width 9"),
        ("w4a1", "activation width 1"),
        ("x", "expected w<W>a<A>"),
        ("w4", "expected"),
        ("", "expected"),
        ("W4A4", "expected"),
    ],
)
def test_parse_invalid(tag, match):
    with pytest.raises(ConfigError, match=match):
        parse_bits(tag)


def test_variant_name():
    assert variant_name("fullycon", Bits(4, 4)) == "fullycon_w4a4"
    assert variant_name("fullycon", None) == "fullycon_float"
