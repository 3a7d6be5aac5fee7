"""Which language a text is written in, as far as the answer's wording needs to know.

Used only to pick the wording of fixed replies (abstentions, notices) in the asker's language;
retrieval deliberately does not look at it (RESULTS.md: weights that followed the language
failed on English manuals, where exact terms win as they do in Korean).
"""

from __future__ import annotations

import re

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LETTER = re.compile(r"[^\W\d_]")
KOREAN_SHARE = 0.3  # a text with at least this share of Hangul letters is answered in Korean


def hangul_share(text: str) -> float:
    """The share of the letters in `text` that are Hangul syllables (0 without letters)."""
    letters = _LETTER.findall(text)
    if not letters:
        return 0.0
    return sum(1 for ch in letters if _HANGUL.match(ch)) / len(letters)


def is_korean(text: str) -> bool:
    return hangul_share(text) >= KOREAN_SHARE
