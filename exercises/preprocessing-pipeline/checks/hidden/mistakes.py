"""Classic clean_text mistakes, recomputed to name the one a student made (trusted side, never shipped).

Each variant is the stub's five-step cleaner, built from the reference's own steps, with one thing done
the usual wrong way.  ``diagnose`` returns the advice of the first variant that gives the student's
results on every text, or None.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Callable
from types import ModuleType

JOINERS = {"\u200c", "\u200d"}
Clean = Callable[[str], str]


def _flat(text: str) -> str:
    return " ".join(text.split())


def cleaner(ref: ModuleType, form: str = "NFKC", tag_with: str = " ", keep: set[str] | None = None,
            categories: tuple[str, ...] = ("Cc", "Cf", "Co"), whitespace: Clean | None = None, passes: int = 100,
            unescape_first: bool = False) -> Clean:
    keep = JOINERS if keep is None else keep
    lines = whitespace or ref._whitespace

    def one(text: str) -> str:
        text = unicodedata.normalize(form, text)
        if unescape_first:
            text = ref.TAG.sub(tag_with, html.unescape(text))
        else:
            text = html.unescape(ref.TAG.sub(tag_with, text))
        text = "".join(c for c in text if c.isspace() or c in keep or unicodedata.category(c) not in categories)
        return lines(text)

    def clean(text: str) -> str:
        for _ in range(passes):
            again = one(text)
            if again == text:
                break
            text = again
        return text

    return clean


def variants(ref: ModuleType) -> list[tuple[str, Clean]]:
    return [
        ("one pass is not enough: repeat the whole five-step pass until the text stops changing (decoding an entity "
         "can make a new tag, NFKC a new '<', deleting a zero-width space a new tag)", cleaner(ref, passes=1)),
        ("normalise with NFKC, not NFC: compatibility characters (the ligature 'ﬁ', full-width letters, '½', '²') "
         "must become their plain equivalents", cleaner(ref, form="NFC")),
        ("normalise with NFKC, not NFKD: NFKD leaves accents as separate combining marks; NFKC composes them again",
         cleaner(ref, form="NFKD")),
        ("replace each HTML tag by ONE SPACE, not by nothing: '<p>a</p><p>b</p>' has the words 'a' and 'b'",
         cleaner(ref, tag_with="")),
        ("keep U+200C (zero width non-joiner) and U+200D (zero width joiner): they are part of how Persian and Indic "
         "words and emoji sequences such as '👩\u200d💻' are written", cleaner(ref, keep=set())),
        ("zero-width and format characters (category Cf: U+200B, U+FEFF, soft hyphen, direction marks) must be "
         "deleted, not only control characters (Cc)", cleaner(ref, categories=("Cc",))),
        ("private-use characters (category Co, U+E000...) must be deleted too", cleaner(ref, categories=("Cc", "Cf"))),
        ("keep the line structure: collapse whitespace INSIDE each line, keep one empty line between paragraphs, do "
         "not join all lines into one", cleaner(ref, whitespace=_flat)),
        ("remove tags first, then unescape entities (the HTML order), in every pass",
         cleaner(ref, unescape_first=True)),
    ]


def diagnose(ref: ModuleType, texts: list[str], results: list[str]) -> str | None:
    """The advice of the first variant that gives ``results`` for all of ``texts``, or None."""
    for advice, variant in variants(ref):
        if all(variant(text) == got for text, got in zip(texts, results, strict=True)):
            return advice
    return None
