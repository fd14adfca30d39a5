"""JSON prefixes: checks of partial strings and numbers as canonical ``json.dumps`` writes them.

    NUM_RE.fullmatch("-1.5e+1", partial=True)        # a match: "-1.5e+16" completes it
    ok_number("12", closed=False, ints=True, lo=1, hi=100)   # True: 12 itself
    ok_number("5.0", closed=True, ints=True)          # False: json.dumps writes the int 5 as "5"

A string is read one raw character at a time (``string_char``), as ``json.dumps`` escapes it with
``ensure_ascii``: printable ASCII as itself, ``\\" \\\\ \\b \\f \\n \\r \\t``, every other character as
``\\uXXXX`` (a surrogate pair above U+FFFF). A number must be a prefix of what ``json.dumps``
writes for an int, or for a float of at most 15 significant digits (which always round-trips);
with bounds, some completion of it must lie within them. ``workbench.agent.grammar`` builds its
tool-call parser on these checks. Pure Python, no torch.
"""

from __future__ import annotations

import math

import regex

# canonical JSON numbers, as json.dumps writes ints and floats (floats kept to 15 significant
# digits, which always round-trip, and to exponents up to 307, so every viable prefix completes)
_INT = r"-?(?:0|[1-9][0-9]*)"
_FIX = r"-?(?:0\.(?:0|0{0,3}[1-9](?:[0-9]*[1-9])?)|[1-9][0-9]{0,15}\.(?:0|[0-9]*[1-9]))"
_SCI = (r"-?[1-9](?:\.[0-9]*[1-9])?e(?:\+(?:1[6-9]|[2-9][0-9]|[12][0-9]{2}|30[0-7])"
        r"|-(?:0[5-9]|[1-9][0-9]|[12][0-9]{2}|30[0-7]))")
INT_RE, NUM_RE = regex.compile(_INT), regex.compile(f"{_INT}|{_FIX}|{_SCI}")
_EXPONENTS = [(f"+{e}", e) for e in range(16, 308)] + [(f"-{e:02d}", -e) for e in range(5, 308)]
_SHORT = {'"': '"', "\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}  # json.dumps escapes


def string_char(s, c: str) -> int:
    """One raw character inside a JSON string, as json.dumps escapes it: -1 bad, 0 more, 1 closed.

    ``s`` holds the string so far and is updated: ``sval`` the decoded text, ``esc`` a half-written
    escape ("", "\\", "\\u", "\\u0", ...), ``hi`` a high surrogate waiting for its low half (0: none).
    """
    if s.esc == "\\":
        if c == "u":
            s.esc = "\\u"
            return 0
        if c in _SHORT and not s.hi:
            s.sval, s.esc = s.sval + _SHORT[c], ""
            return 0
        return -1
    if s.esc:  # \u and some hex digits
        if c not in "0123456789abcdef":
            return -1
        s.esc += c
        lo, top = _code_range(s.esc)
        if not _code_ok(lo, top, s.hi):
            return -1
        if lo == top:
            s.esc = ""
            if s.hi:
                s.sval, s.hi = s.sval + chr(0x10000 + ((s.hi - 0xD800) << 10) + lo - 0xDC00), 0
            elif 0xD800 <= lo <= 0xDBFF:
                s.hi = lo  # a high surrogate: the low half must follow
            else:
                s.sval += chr(lo)
        return 0
    if s.hi:
        if c != "\\":
            return -1
        s.esc = "\\"
        return 0
    if c == '"':
        return 1
    if c == "\\":
        s.esc = "\\"
        return 0
    if " " <= c <= "~":
        s.sval += c
        return 0
    return -1  # json.dumps escapes every other character (ensure_ascii)


def _code_range(esc: str) -> tuple[int, int]:
    """The code units a partial ``\\uXXXX`` escape can still become."""
    h = esc[2:]
    shift = 4 * (4 - len(h))
    lo = int(h or "0", 16) << shift
    return lo, lo + (1 << shift) - 1


def _code_ok(lo: int, top: int, hi_pending: int) -> bool:
    """Whether json.dumps writes some code unit in [lo, top] as \\uXXXX here."""
    if hi_pending:
        return lo <= 0xDFFF and top >= 0xDC00
    if lo == top and lo in (8, 9, 10, 12, 13):  # written \b \t \n \f \r
        return False
    return lo < 0x20 or (top >= 0x7F and not (lo >= 0xDC00 and top <= 0xDFFF))


def escape_chars(esc: str, hi: int) -> tuple[str, ...]:
    """A few characters a half-written escape can still give (to test patterns and grounding)."""
    if hi or esc.startswith("\\u") and _code_range(esc)[0] >= 0xD800:
        return ("\U0001f600",)
    if esc == "\\":
        return (*_SHORT.values(), "\x01", "\x7f", "\xe9")
    lo, top = _code_range(esc)
    return tuple(chr(c) for c in (lo, top) if c >= 0x7F and c < 0xD800 or c < 0x20 and c not in (8, 9, 10, 12, 13))


def _sig(u: str) -> int:
    """Significant digits the shortest float starting with ``u`` (unsigned, has '.' or 'e') needs."""
    mant = u.partition("e")[0]
    i, _, f = mant.partition(".")
    if f in ("", "0"):
        return len(i.strip("0"))
    return len((i + f).lstrip("0")) + (f[-1] == "0" and "e" not in u)


def ok_number(raw: str, closed: bool, ints: bool, lo: float | None = None, hi: float | None = None) -> bool:
    """Whether ``raw`` is a canonical number (``closed``) or a prefix of one, within [lo, hi].

    ``ints``: an integer, written as an int ("5", never "5.0"); otherwise any int or float, a float
    kept to 15 significant digits.
    """
    if (INT_RE if ints else NUM_RE).fullmatch(raw, partial=not closed) is None:
        return False
    u = raw.lstrip("-")
    if ("." in u or "e" in u) and _sig(u) > 15:
        return False
    if lo is None and hi is None:
        return True
    if closed:
        v = int(raw) if INT_RE.fullmatch(raw) else float(raw)
        return (lo is None or v >= lo) and (hi is None or v <= hi)
    return _reachable(raw, ints, lo, hi)


def _reachable(raw: str, ints: bool, lo: float | None, hi: float | None) -> bool:
    """Whether some canonical number starting with ``raw`` lies in [lo, hi]."""
    lo, hi = (-math.inf if lo is None else lo), (math.inf if hi is None else hi)
    neg, u = raw.startswith("-"), raw.lstrip("-")
    a, b = (max(-hi, 0.0), -lo) if neg else (max(lo, 0.0), hi)  # the magnitudes allowed for this sign
    if ints:
        a, b = math.ceil(a), (math.floor(b) if math.isfinite(b) else b)
    if a > b:
        return False
    if "e" in u:
        m, _, ex = u.partition("e")
        return any(a <= float(m) * 10.0 ** e <= b for s, e in _EXPONENTS if s.startswith(ex))
    if "." in u:  # [x, x + one unit of the last digit written)
        return float(u) <= b and float(u) + 10.0 ** -len(u.partition(".")[2]) >= a
    if not u:  # just "-": any magnitude (1 or more for an int; -0.0 is a float)
        return b >= (1 if ints else 0)
    if u == "0":  # 0 itself, or 0.xxx
        return a <= (0 if ints else 1)
    if b == math.inf:
        return True
    d, scale = int(u), 1
    while d * scale <= b:  # more digits: [d, d+1) * 10^k
        if (d + 1) * scale - ints >= a:
            return True
        scale *= 10
    return not ints and len(u) == 1 and d * 1e-307 <= b and a <= (d + 1) * 1e-5  # 3e-05 and smaller
