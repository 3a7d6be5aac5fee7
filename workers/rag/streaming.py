"""A chat model's reply shown while it is written, without showing what the citation check
will remove.

Citations of sources the model was not given are left out as the text arrives (a piece ending in
what may still become a citation, such as "[" or "[1", is held back until it is complete). The
streamed text is a preview: the answer is checked as a whole afterwards (`check_citations`), and
the message is replaced by the checked answer before it is final.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CITATION = re.compile(r"\[(\d{1,3})\]")
_OPEN_CITATION = re.compile(r"\[\d{0,3}$")

TextSink = Callable[[str], None]


class CitationFilter:
    def __init__(self, sources: int) -> None:
        self.sources = sources
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        open_citation = _OPEN_CITATION.search(text)
        if open_citation:
            self._held, text = text[open_citation.start() :], text[: open_citation.start()]
        else:
            self._held = ""
        return _CITATION.sub(self._known, text)

    def flush(self) -> str:
        rest, self._held = self._held, ""
        return rest

    def _known(self, match: re.Match[str]) -> str:
        return match.group(0) if 1 <= int(match.group(1)) <= self.sources else ""
