"""Decode a value the sandbox sent, in the trusted parent (pure; no ``marshal``, ``pickle`` or ``eval``).

The encoding is :mod:`evaluate.harness`'s (its docstring gives the grammar). Nothing in the
bytes is trusted: only known tags are admitted and only exact builtin values built; malformed
bytes, more than :data:`MAX_NODES` values, nesting deeper than the runner's own limit, or an
unhashable set element or dict key stop with :class:`BadValue`. Ints are hex, so ints longer
than the 4300-digit ``str()`` limit survive.
"""

from __future__ import annotations

import math

from evaluate import harness

MAX_BYTES = 2 * harness.MAX_VALUE_BYTES  # a little above what the runner sends
MAX_DEPTH = harness.MAX_VALUE_DEPTH
MAX_NODES = harness.MAX_VALUE_BYTES  # every node takes at least one byte
MAX_REPR_CHARS = 80
_HEX_DIGITS = b"0123456789abcdef"
_FLOAT_CHARS = b"0123456789abcdefinxp.+-"
_CONSTANTS = {harness.TAG_NONE: None, harness.TAG_TRUE: True, harness.TAG_FALSE: False}
_COLLECTIONS = {harness.TAG_LIST: list, harness.TAG_TUPLE: tuple, harness.TAG_SET: set,
                harness.TAG_FROZENSET: frozenset}


class BadValue(ValueError):
    """The bytes are not a well-formed plain-data value."""


def decode(data: bytes) -> object:
    """The value encoded in ``data`` (the whole of it); :class:`BadValue` when malformed, too large or too deep."""
    if len(data) > MAX_BYTES:
        raise BadValue(f"{len(data)} bytes, more than {MAX_BYTES}")
    reader = _Reader(bytes(data))
    value = reader.value(0)
    if reader.pos != len(reader.data):
        raise BadValue(f"{len(reader.data) - reader.pos} trailing bytes")
    return value


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.nodes = 0

    def value(self, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise BadValue(f"nested deeper than {MAX_DEPTH} levels")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise BadValue(f"more than {MAX_NODES} values")
        tag = self.take(1)
        if tag in _CONSTANTS:
            return _CONSTANTS[tag]
        if tag == harness.TAG_INT:
            text = self.until(harness.END, _HEX_DIGITS + b"-")
            try:
                return int(text, 16)
            except ValueError:
                raise BadValue(f"malformed int {text[:20]!r}") from None
        if tag == harness.TAG_FLOAT:
            return self.floating(harness.END)
        if tag == harness.TAG_COMPLEX:
            real = self.floating(harness.COMPLEX_SEP)
            return complex(real, self.floating(harness.END))
        if tag == harness.TAG_STR:
            try:
                return self.sized().decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise BadValue(f"malformed text ({exc.reason})") from None
        if tag == harness.TAG_BYTES:
            return self.sized()
        if tag in _COLLECTIONS:
            items = [self.value(depth + 1) for _ in range(self.count())]
            try:
                return _COLLECTIONS[tag](items)
            except TypeError as exc:
                raise BadValue(f"unhashable set element ({exc})") from None
        if tag == harness.TAG_DICT:
            out = {}
            for _ in range(self.count()):
                key = self.value(depth + 1)
                try:
                    out[key] = self.value(depth + 1)
                except TypeError as exc:
                    raise BadValue(f"unhashable dict key ({exc})") from None
            return out
        raise BadValue(f"unknown tag {tag!r} at byte {self.pos - 1}")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise BadValue("truncated")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def until(self, stop: bytes, allowed: bytes) -> bytes:
        """The bytes up to ``stop`` (consumed), all of them in ``allowed``."""
        end = self.data.find(stop, self.pos)
        if end < 0:
            raise BadValue("truncated")
        text = self.data[self.pos : end]
        if not text or text.translate(None, allowed):
            raise BadValue(f"malformed number at byte {self.pos}")
        self.pos = end + 1
        return text

    def count(self) -> int:
        n = int(self.until(harness.END, _HEX_DIGITS), 16)
        if n > len(self.data) - self.pos:  # every item takes at least one byte
            raise BadValue(f"count {n} exceeds the data")
        return n

    def floating(self, stop: bytes) -> float:
        text = self.until(stop, _FLOAT_CHARS)
        try:
            return float.fromhex(text.decode("ascii"))
        except (ValueError, OverflowError) as exc:
            raise BadValue(f"malformed float {text!r}") from exc

    def sized(self) -> bytes:
        return self.take(int(self.until(harness.LENGTH_END, _HEX_DIGITS), 16))


def short_repr(value: object, limit: int = MAX_REPR_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters; safe for ints beyond the ``str()`` digit limit."""
    try:
        text = repr(value)
    except ValueError:  # an int over sys.get_int_max_str_digits() digits, maybe nested
        if isinstance(value, int):
            return f"<int of about {math.floor(abs(value).bit_length() * math.log10(2)) + 1} digits>"
        return f"<{type(value).__name__} holding an int too long to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
