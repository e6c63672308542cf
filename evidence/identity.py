"""One canonical form for every comparison of who acts (four-eyes review, job ownership).

A name typed into ``--by``, ``CREV_USER`` or a form is compared with the stored name by
:func:`canonical_identity`, never by raw or lower-cased text, so ``alice`` with a zero-width space,
a soft hyphen, a Cyrillic ``а``, fullwidth letters or a dotted ``İ`` is still alice and cannot approve
her own submission or cancel someone else's job under a look-alike name.

The canonical form follows Unicode TR39 ("Unicode Security Mechanisms", §4 Confusable Detection):

1. NFKC (UAX #15) folds compatibility forms: fullwidth ``ａ``, ligatures, superscripts;
2. default-ignorable code points (``Default_Ignorable_Code_Point``, UAX #44) and every format
   character (general category ``Cf``: zero-width space and joiners, soft hyphen, bidi marks) are
   removed: they change nothing a reader sees;
3. full case folding (Unicode §3.13, :meth:`str.casefold`);
4. the confusable skeleton: NFD, each character replaced by its prototype from a table of the
   TR39 ``confusables.txt`` mappings onto Latin letters and digits for the Cyrillic, Greek, Armenian
   and Latin look-alikes of names, NFD again; a dot above an ``i`` or ``j`` (what folding a dotted
   ``İ`` leaves) is dropped, since those letters already carry it.

The table is a subset of ``confusables.txt`` (version 15.1), not all of it: it covers the scripts
that pass for Latin in a name. A name whose canonical form is empty (``$'\\u200b'``) is refused by
:func:`check_identity`.
"""

from __future__ import annotations

import unicodedata

from .errors import EvidenceError

__all__ = ["canonical_identity", "same_identity", "check_identity", "normal_text", "MAX_IDENTITY_LENGTH"]

MAX_IDENTITY_LENGTH = 120

# Default_Ignorable_Code_Point ranges of DerivedCoreProperties.txt (Unicode 15.1) that are not Cf
# (category Cf is removed as a whole): combining grapheme joiner, Hangul fillers, Khmer inherent
# vowels, Mongolian free variation selectors, variation selectors, and the reserved ignorables.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF), (0x2060, 0x206F),
)

# TR39 confusables.txt prototypes (lower case, after folding) for look-alikes of Latin letters/digits.
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "о": "o", "р": "p", "с": "c",
    "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y",
    # Greek
    "α": "a", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "υ": "u", "χ": "x", "γ": "y", "ϲ": "c",
    "ϳ": "j",
    # Armenian
    "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ո": "n", "զ": "q",
    # Latin look-alikes and digits
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ℓ": "l", "ǀ": "l", "1": "l", "|": "l", "0": "o",
}
# Sequences TR39 maps as a whole (after the single characters).
_SEQUENCES = (("rn", "m"), ("vv", "w"))


def _ignorable(ch: str) -> bool:
    if unicodedata.category(ch) == "Cf":
        return True
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _IGNORABLE_RANGES)


def normal_text(text: str) -> str:
    """``text`` in NFKC with default-ignorable and format characters removed (steps 1-2 above).

    What two texts are compared by when they must mean the same thing to a reader: a result's
    dataset or method typed with a zero-width space, a soft hyphen or in NFD is the same value
    (used by :func:`evidence.rows.fingerprint`, so such a re-import is a duplicate).
    """
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if not _ignorable(ch))


def canonical_identity(name: str | None) -> str:
    """The TR39-style canonical form of ``name`` (see the module docstring); ``""`` for none.

    Two names are the same person's exactly when their canonical forms are equal.
    """
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", str(name))
    text = "".join(ch for ch in text if not _ignorable(ch))
    text = unicodedata.normalize("NFD", text.casefold())
    out: list[str] = []
    for ch in text:
        if ch == "\u0307" and out and out[-1] in ("i", "j"):
            continue  # the dot a folded dotted capital İ leaves above an already dotted i
        out.append(_CONFUSABLES.get(ch, ch))
    text = unicodedata.normalize("NFD", "".join(out))
    for seq, proto in _SEQUENCES:
        text = text.replace(seq, proto)
    text = "".join(ch for ch in text if not _ignorable(ch))
    return unicodedata.normalize("NFC", " ".join(text.split()))


def same_identity(a: str | None, b: str | None) -> bool:
    """Whether ``a`` and ``b`` name the same person (equal non-empty canonical forms)."""
    ca, cb = canonical_identity(a), canonical_identity(b)
    return bool(ca) and ca == cb


def check_identity(name: str | None, what: str = "name") -> str:
    """``name`` stripped, or :class:`~evidence.errors.EvidenceError` when it is empty, invisible
    (nothing left in canonical form: only spaces, zero-width or format characters) or longer than
    :data:`MAX_IDENTITY_LENGTH` characters."""
    text = (name or "").strip()
    if not text or len(text) > MAX_IDENTITY_LENGTH:
        raise EvidenceError(f"{what} must be 1 to {MAX_IDENTITY_LENGTH} characters, not {len(text)}")
    if not canonical_identity(text):
        codes = " ".join(f"U+{ord(c):04X}" for c in text[:8])
        raise EvidenceError(f"{what} {codes} is invisible (only format or ignorable characters): give a readable name")
    return text
