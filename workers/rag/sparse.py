"""Sparse lexical vectors that work for Korean and for exact terms.

Word tokenizers do not match "파이프라인이" to "파이프라인" (Korean attaches particles to
nouns), so Hangul runs are indexed as overlapping character bigrams. Identifiers such as
`ERR-4021`, `v2.3` or `snake_case` are kept whole *and* split into their parts, so a query for
the exact code matches exactly while a query for a part still matches.

Document vectors carry BM25's saturated term frequency; query vectors carry 1 per term; the
index applies IDF (Qdrant's `Modifier.IDF`), so together they score as BM25. Length
normalisation needs the index's average passage length at write time: the sync passes the
running mean of what the index holds (`TermLengths`), so a corpus of short sections and one of
long Korean pages are each normalised against their own average, as BM25 means.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass

BM25_K1 = 1.2
BM25_B = 0.75
# The average passage length (in terms) assumed before the index holds any passage; it counts
# as one passage in the running mean, so it fades after the first few documents.
AVERAGE_TERMS = 250.0
INDEX_SPACE = 2**31 - 1

_TOKEN = re.compile(r"[\w]+(?:[-.:/#][\w]+)*", re.UNICODE)
_HANGUL = re.compile(r"[\uac00-\ud7a3]+")
_PART = re.compile(r"[^\W_]+", re.UNICODE)

_STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "i",
        "if", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was",
        "were", "will", "with", "what", "when", "where", "which", "who", "how", "do", "does",
        "did", "can", "my", "me", "we", "you", "your", "our",
    }
)  # fmt: skip


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]
    length: int = 0  # terms in the passage it was built from (BM25's document length)


def terms(text: str) -> list[str]:
    """Lexical terms of `text`: lower-cased words, identifier parts, and Hangul bigrams."""
    text = unicodedata.normalize("NFKC", text).lower()
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        parts = _PART.findall(token)
        if len(parts) > 1 or token != (parts[0] if parts else token):
            out.append(token)
        for part in parts:
            out.extend(_part_terms(part))
    return out


def _part_terms(part: str) -> list[str]:
    if not _HANGUL.search(part):
        return [] if part in _STOPWORDS else [part]
    out: list[str] = []
    for piece in re.split(r"([\uac00-\ud7a3]+)", part):
        if not piece:
            continue
        if _HANGUL.fullmatch(piece):
            if len(piece) == 1:
                out.append(piece)
            else:
                out.extend(piece[i : i + 2] for i in range(len(piece) - 1))
        elif piece not in _STOPWORDS:
            out.append(piece)
    return out


def _index(term: str) -> int:
    return zlib.crc32(term.encode("utf-8")) % INDEX_SPACE


def _vector(weights: dict[int, float], length: int = 0) -> SparseVector:
    indices = sorted(weights)
    return SparseVector(indices, [weights[i] for i in indices], length)


class TermLengths:
    """The running mean passage length of an index, in terms, seeded with `AVERAGE_TERMS`."""

    def __init__(self, passages: int = 0, total_terms: int = 0) -> None:
        self.passages = passages
        self.total_terms = total_terms

    @property
    def average(self) -> float:
        return (AVERAGE_TERMS + self.total_terms) / (self.passages + 1)

    def add(self, vectors: list[SparseVector]) -> None:
        self.passages += len(vectors)
        self.total_terms += sum(vector.length for vector in vectors)


def document_vector(text: str, average_terms: float = AVERAGE_TERMS) -> SparseVector:
    """BM25 term-frequency weights for a passage, normalised by the index's average length."""
    counts = Counter(terms(text))
    length = sum(counts.values())
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / average_terms)
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        index = _index(term)
        weights[index] = weights.get(index, 0.0) + tf * (BM25_K1 + 1) / (tf + norm)
    return _vector(weights, length)


def query_vector(text: str) -> SparseVector:
    """One per distinct query term; IDF comes from the index."""
    return _vector({_index(term): 1.0 for term in set(terms(text))})
