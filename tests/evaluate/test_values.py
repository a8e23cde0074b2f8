"""The plain-data encoding: the runner's encoder against the parent's decoder, and `==` as Python's (pure).

The encoder is the harness's own closure, called here in-process: no sandbox is started.
"""

from __future__ import annotations

import collections
import enum
import math

import pytest

from evaluate import harness
from evaluate.values import MAX_DEPTH, BadValue, decode, short_repr

encode = harness._make_encoder(harness.MAX_VALUE_BYTES, harness.MAX_VALUE_DEPTH)


def roundtrip(value):
    return decode(encode(value))


class Colour(enum.IntEnum):
    RED = 1


class Shouty(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class Backwards(list):
    def __iter__(self):
        return reversed(list.copy(self))


Point = collections.namedtuple("Point", "x y")
BIG = 7 ** 20000  # about 16900 digits: str() of it raises on Python 3.11+
NAN = float("nan")


def ident(value) -> str:
    """Test ids that survive ints too long for str()."""
    return short_repr(value, 30)


@pytest.mark.parametrize(
    "value",
    [
        None, True, False, 0, -1, 2 ** 64, -(2 ** 200), BIG, -BIG, 0.0, -0.0, 1.5, 1e308, float("inf"),
        float("-inf"), 1 + 2j, complex(-0.0, float("inf")), "", "héllo wörld ✓ 日本", "\ud800 lone surrogate",
        b"", b"\x00\xff", [], (), set(), frozenset(), {}, [1, [2, [3, (4, {5})]]], {(1, 2): [3.5, None], "k": {"x": b"y"}},
        frozenset({(1, "a"), (2, "b")}), {1: {2: {3: ()}}},
    ],
    ids=ident,
)
def test_roundtrip_keeps_value_and_exact_type(value):
    back = roundtrip(value)
    assert back == value and type(back) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, back) == math.copysign(1.0, value)  # -0.0 survives


def test_nan_roundtrips_and_compares_as_python_does():
    back = roundtrip(NAN)
    assert isinstance(back, float) and math.isnan(back)
    assert (back == 1.0) is (NAN == 1.0) is False
    assert roundtrip([NAN]) != [1.0]


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (1, 1.0), (True, 1), (0.1 + 0.2, 0.3), (-0.0, 0.0), (2 ** 53 + 1, float(2 ** 53)), (BIG, BIG), (BIG, BIG + 1),
        ((1, (2, 3)), (1, (2, 3))), ((1, 2), [1, 2]), ({1, 2}, {2, 1}), ({1, 2}, frozenset({1, 2})),
        ({(1, 2), (3, 4)}, {(3, 4), (1, 2)}), ([{1, 2}, (3,)], [{2, 1}, (3,)]), ({1: 2}, {1: 2.0}), ("a", b"a"),
        ("é", "e\u0301"), ("日本", "日本"), (1 + 0j, 1), ([1, [2.0]], [1, [2]]), (None, 0), ({}, set()),
    ],
    ids=ident,
)
def test_parent_comparison_equals_pythons(value, literal):
    assert (roundtrip(value) == literal) is (value == literal)


@pytest.mark.parametrize(
    ("value", "base"),
    [
        (collections.Counter("abca"), {"a": 2, "b": 1, "c": 1}),  # MBPP task 40
        (collections.OrderedDict([("b", 1), ("a", 2)]), {"a": 2, "b": 1}),
        (collections.defaultdict(int, {"x": 1}), {"x": 1}),
        (Point(1, 2), (1, 2)),
        (Colour.RED, 1),
        (Shouty("abc"), "abc"),
        (Backwards([1, 2, 3]), [1, 2, 3]),
    ],
)
def test_builtin_subclasses_are_sent_as_their_base_read_through_base_methods(value, base):
    back = roundtrip(value)
    assert back == base and type(back) is type(base)


def test_counter_and_ordered_dict_keep_pythons_answer():
    for value in (collections.Counter("abca"), collections.OrderedDict([("b", 1), ("a", 2), ("c", 1)])):
        for literal in ({"a": 2, "b": 1, "c": 1}, {"c": 1, "b": 1, "a": 2}, {"a": 2, "b": 1}, {"a": 2, "b": 1, "c": 9}):
            assert (roundtrip(value) == literal) is (value == literal)
    # The overridden __eq__ of a subclass is ignored: the base value decides.
    assert roundtrip(Shouty("abc")) != "xyz"


class Anything:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Anything(), "object of type Anything"),
        ((x for x in range(3)), "object of type generator"),
        ([1, Anything()], "object of type Anything"),
        ({"k": range(3)}, "object of type range"),
        (bytearray(b"x"), "object of type bytearray"),
        ("x" * (harness.MAX_VALUE_BYTES + 1), "larger than"),
        (list(range(harness.MAX_VALUE_BYTES)), "larger than"),
        (10 ** 200000, "larger than"),
    ],
    ids=ident,
)
def test_other_values_are_refused_with_a_message(value, message):
    with pytest.raises(harness.UnsupportedValue, match=message):
        encode(value)


def test_deep_and_cyclic_values_are_refused():
    deep: list = []
    for _ in range(harness.MAX_VALUE_DEPTH + 1):
        deep = [deep]
    with pytest.raises(harness.UnsupportedValue, match="nested deeper"):
        encode(deep)
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(harness.UnsupportedValue, match="nested deeper"):
        encode(cycle)


@pytest.mark.parametrize(
    "data",
    [
        b"", b"X", b"i;", b"i12", b"ixyz;", b"i1;i2;", b"fz;", b"fnope;", b"s5:abc", b"s3:\xff\xfe\xfd", b"l2;i1;",
        b"lffffffffffff;", b"S1;l0;", b"d1;l0;i1;", b"t1;" * (MAX_DEPTH + 2) + b"N", b"c0x1p+0;", b"b-1:",
        b"\x00" * 10,
    ],
)
def test_malformed_bytes_are_bad_values_never_exceptions_of_other_types(data):
    with pytest.raises(BadValue):
        decode(data)


def test_short_repr_cuts_and_survives_huge_ints():
    assert short_repr(list(range(100))).endswith("...") and len(short_repr(list(range(100)))) == 80
    assert short_repr(BIG).startswith("<int of about") and "digits" in short_repr(BIG)
    assert "int too long" in short_repr([BIG])
    assert short_repr({"a": 1}) == "{'a': 1}"


def test_the_encoder_uses_no_global_or_builtin_name():
    # Everything it calls was bound before any program ran (see harness._make_encoder): the
    # names of its code, of the functions it defines, and of every step it reaches through
    # its closure (the walker and the per-type encoders).
    def names(code) -> set[str]:
        found = set(code.co_names)
        for const in code.co_consts:
            if hasattr(const, "co_names"):
                found |= names(const)
        return found

    def reached(value, seen: set[int]) -> set[str]:
        if id(value) in seen:
            return set()
        seen.add(id(value))
        if isinstance(value, tuple):
            return set().union(*(reached(item, seen) for item in value))
        if not hasattr(value, "__code__"):
            return set()
        found = names(value.__code__)
        for cell in value.__closure__ or ():
            found |= reached(cell.cell_contents, seen)
        return found

    attributes = {"real", "imag", "append"}  # of exact complex and list objects it made itself
    steps: set[int] = set()
    assert reached(encode, steps) <= attributes
    assert len(steps) > 10  # the walker, the scalar and container encoders were all followed
