"""Call reference numbers that can be read over the phone (spec 5.2.2, 13.5.1l).

At the end of every call the Call Handler offers the Caller a unique reference number (5.2.2);
Callers quote it when they ring back to ask what is happening (13.5.1l). So a reference has to
survive being read aloud, written on the back of an envelope and typed back in by someone else:

* **Alphabet.** Crockford's base 32: the digits and the letters except ``I``, ``L``, ``O`` and
  ``U``. On input ``O`` is read as ``0`` and ``I``/``L`` as ``1``; case, spaces and hyphens do
  not matter.
* **Shape.** Six characters carry the number and a seventh is the check character, grouped for
  reading: ``K7M-3QX-F``. Six characters hold 2³⁰ (1,073,741,824) sequence numbers, which is
  centuries of calls for the busiest organisation.
* **Check character.** The characters (prefix included) are the coefficients of a polynomial
  over the field GF(32) evaluated at a generator, so each position has a different non-zero
  weight; the check character makes the weighted sum zero. Any single mistyped character and
  any two swapped characters (adjacent or not, check character included) therefore fail the
  check. (This is the Damm construction over GF(32): a totally anti-symmetric quasigroup.)
* **Not sequential-looking.** The engine passes a sequence number from its store; a fixed
  bijective scramble (a four-round Feistel network on 30 bits) turns consecutive numbers into
  unrelated-looking references. The scramble is not a secret and a reference is not a
  password: a Caller is still authenticated as the written procedure says (13.5.1c).
* **Organisation prefix (optional).** Sequence numbers are per organisation, so the same number
  gives the same six characters in every organisation. Pass the organisation's short code as
  ``prefix`` (1–4 characters of the same alphabet, starting with a letter — e.g. ``HAV``,
  ``EN``, ``BAR``; ``EAL`` is refused because ``L`` is not in the alphabet) to make references
  unique across the consortium: ``HAV-K7M-3QX-F``. The prefix is covered by the check character,
  and a reference read out without its prefix always fails the check (the one code in 32 for
  which that would not hold, such as ``TH``, is refused with a request to choose another). When
  a Caller reads out only the last seven characters, the desk, which knows which organisation's
  line was rung, passes ``prefix=`` to :func:`parse_reference`.

Changing the alphabet, the scramble keys or the check would change every reference already
given out; they are fixed for good.
"""

from __future__ import annotations

from dataclasses import dataclass

from oohcore.errors import OohcoreError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base 32 (no I, L, O or U)."""

BODY_LENGTH = 6
"""Characters carrying the (scrambled) sequence number."""

MAX_PREFIX_LENGTH = 4

MAX_NUMBER = (1 << (5 * BODY_LENGTH)) - 1
"""The largest sequence number a reference can carry (2³⁰ − 1)."""

_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_READ_AS = {"O": "0", "I": "1", "L": "1"}  # Crockford's decoding of look-alikes
_IGNORED = frozenset(" -\t._/")

# ---------------------------------------------------------------------------------------------
# The scramble: a balanced Feistel network on 30 bits (two 15-bit halves). Whatever the round
# function, a Feistel network is a bijection, and running the rounds backwards inverts it.
# ---------------------------------------------------------------------------------------------

_HALF_BITS = 5 * BODY_LENGTH // 2
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUND_KEYS = (0x3A5F, 0x1C2B, 0x6E91, 0x24D7)


def _round(half: int, key: int) -> int:
    x = ((half ^ key) * 0x2C1B3C6D + key) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    x ^= x >> 13
    return x & _HALF_MASK


def _scramble(n: int) -> int:
    left, right = n >> _HALF_BITS, n & _HALF_MASK
    for key in _ROUND_KEYS:
        left, right = right, left ^ _round(right, key)
    return (left << _HALF_BITS) | right


def _unscramble(n: int) -> int:
    left, right = n >> _HALF_BITS, n & _HALF_MASK
    for key in reversed(_ROUND_KEYS):
        left, right = right ^ _round(left, key), left
    return (left << _HALF_BITS) | right


# ---------------------------------------------------------------------------------------------
# The check: arithmetic in GF(32) = GF(2)[x] / (x⁵ + x² + 1); addition is XOR.
# ---------------------------------------------------------------------------------------------

_GF_POLY = 0b100101
_GENERATOR = 0b00010  # x, of multiplicative order 31: weights differ for up to 31 positions


def _times_generator(v: int) -> int:
    v <<= 1
    if v & 0b100000:
        v ^= _GF_POLY
    return v


def _fold(values: list[int]) -> int:
    """Horner's rule: Σ vᵢ·g^(k−i) over GF(32). Zero for a valid reference."""
    acc = 0
    for v in values:
        acc = _times_generator(acc) ^ v
    return acc


def _check_value(values: list[int]) -> int:
    # The check c must make g·acc + c == 0, and in characteristic 2, −x == x.
    return _times_generator(_fold(values))


class InvalidReference(OohcoreError, ValueError):
    """A call reference that cannot be read: wrong characters, wrong length or a failed check.

    The message is written for the Call Handler, who should read the reference back to the
    Caller and try again.
    """


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed call reference: the sequence number it stands for and its prefix (may be "")."""

    number: int
    prefix: str = ""

    @property
    def text(self) -> str:
        """The canonical, grouped form, e.g. ``HAV-K7M-3QX-F``."""
        return format_reference(self.number, prefix=self.prefix)

    def __str__(self) -> str:
        return self.text


def _clean_prefix(prefix: str) -> str:
    p = prefix.strip().upper()
    if not p:
        return ""
    if len(p) > MAX_PREFIX_LENGTH:
        raise ValueError(
            f"reference prefix {prefix!r} is too long: use at most {MAX_PREFIX_LENGTH} characters"
        )
    bad = sorted({ch for ch in p if ch not in _VALUE})
    if bad:
        raise ValueError(
            f"reference prefix {prefix!r} contains {', '.join(repr(c) for c in bad)}: use only "
            "digits and the letters other than I, L, O and U (they are misheard as 1, 1, 0 "
            "and V), e.g. 'HAV' or 'TH'"
        )
    if p[0].isdigit():
        raise ValueError(f"reference prefix {prefix!r} must start with a letter")
    if _fold([_VALUE[ch] for ch in p]) == 0:
        # The check is linear, so a prefix folding to zero would leave the check character
        # unchanged: a reference read out without it would still pass. One code in 32 does.
        raise ValueError(
            f"reference prefix {prefix!r} cannot be used: the check character could not tell "
            "a reference with it from one without it; choose another code (e.g. add a letter)"
        )
    return p


def format_reference(n: int, *, prefix: str = "") -> str:
    """The reference for sequence number ``n`` (0 ≤ n ≤ :data:`MAX_NUMBER`), e.g. ``K7M-3QX-F``.

    With ``prefix`` (the organisation's short code) the result is ``HAV-K7M-3QX-F``.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"a reference is made from an int sequence number, not {n!r}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"sequence number {n} is out of range: references carry 0..{MAX_NUMBER}")
    p = _clean_prefix(prefix)
    s = _scramble(n)
    body = [(s >> (5 * (BODY_LENGTH - 1 - i))) & 31 for i in range(BODY_LENGTH)]
    check = _check_value([_VALUE[ch] for ch in p] + body)
    chars = "".join(ALPHABET[v] for v in body)
    groups = [chars[:3], chars[3:], ALPHABET[check]]
    if p:
        groups.insert(0, p)
    return "-".join(groups)


def _normalise(text: str) -> str:
    out = []
    for ch in text.upper():
        if ch in _IGNORED:
            continue
        ch = _READ_AS.get(ch, ch)
        if ch not in _VALUE:
            hint = " (U is never used in references)" if ch == "U" else ""
            raise InvalidReference(
                f"{text!r} is not a call reference: {ch!r} is not used in references{hint}; "
                "read it back to the caller and check each character"
            )
        out.append(ch)
    return "".join(out)


def parse_reference(text: str, *, prefix: str | None = None) -> Reference:
    """Read a reference typed in by a Call Handler; raise :class:`InvalidReference` if it fails.

    Case, spaces and hyphens are ignored; ``O`` is read as ``0`` and ``I``/``L`` as ``1``.
    ``prefix``, when given, is the organisation whose line the Caller rang: a reference without
    a prefix is read as belonging to it, and a reference with a different prefix is refused.
    """
    chars = _normalise(text)
    expected = _clean_prefix(prefix) if prefix is not None else None
    extra = len(chars) - (BODY_LENGTH + 1)
    if extra < 0 or extra > MAX_PREFIX_LENGTH:
        raise InvalidReference(
            f"{text!r} is not a call reference: a reference has {BODY_LENGTH + 1} characters "
            f"(e.g. K7M-3QX-F), optionally after a short organisation code; {len(chars)} were "
            "given"
        )
    got_prefix, rest = chars[:extra], chars[extra:]
    if expected is not None:
        if got_prefix and got_prefix != expected:
            raise InvalidReference(
                f"{text!r} is a reference of organisation {got_prefix}, not {expected}"
            )
        got_prefix = expected
    elif got_prefix and got_prefix[0].isdigit():
        raise InvalidReference(
            f"{text!r} is not a call reference: it has {len(chars)} characters, and an "
            "organisation code starts with a letter"
        )
    values = [_VALUE[ch] for ch in got_prefix + rest]
    if _fold(values) != 0:
        raise InvalidReference(
            f"{text!r} is not a valid call reference (the check character does not match): a "
            "character may have been misheard or two swapped; read it back to the caller"
        )
    s = 0
    for v in values[len(got_prefix) : len(got_prefix) + BODY_LENGTH]:
        s = (s << 5) | v
    return Reference(number=_unscramble(s), prefix=got_prefix)
