"""The use case: a question and a reader -> an Answer with checked citations, or an abstention.

With a chat model configured the model writes the answer from numbered sources; without one the
answer is extractive: the passages' most relevant sentences, quoted and cited. Either way every
`[n]` must name a source that was given; invalid ones are removed, the rest renumbered in order
of first use, and an answer left with no valid citation abstains instead of guessing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from workers.rag.audience import Audience
from workers.rag.curation import UNCURATED, Curation
from workers.rag.index import Hit
from workers.rag.language import is_korean
from workers.rag.llm import ChatModel
from workers.rag.prompt import Turn, build_prompt
from workers.rag.retrieve import Retrieval, Retriever
from workers.rag.sparse import terms
from workers.rag.streaming import CitationFilter, TextSink
from workers.rag.tokens import TokenCounter

log = logging.getLogger(__name__)

# A passage is worth citing if it is close in meaning to the question (the embedder's
# `close_similarity`), or shares most of the question's terms without being far from it (above
# the embedder's `floor_similarity`).
MIN_TERM_COVERAGE = 0.6
MAX_SOURCES = 8
EXTRACT_FROM_HITS = 3
EXTRACT_BLOCKS = 2
KEEP_FRACTION_OF_BEST = 0.75
MAX_QUOTE_CHARS = 600

ABSTAIN_EN = (
    "I couldn't find this in the documents I can see. Try rephrasing, or ask the team that "
    "owns the topic."
)
ABSTAIN_KO = (
    "제가 볼 수 있는 문서에서는 이 내용을 찾지 못했습니다. 질문을 바꿔 보시거나 담당 팀에 "
    "문의해 주세요."
)

_CITATION = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class SourceRef:
    n: int
    title: str
    url: str
    source: str
    updated_at: datetime
    document_id: str
    acl: frozenset[str] = frozenset()
    version: str = ""
    passages: tuple[str, ...] = ()  # fingerprints of the passages cited: `passage_print`


def passage_print(text: str) -> str:
    """A short fingerprint of a passage's text: a cited passage still holds if it is unchanged."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Answer:
    text: str
    abstained: bool
    sources: list[SourceRef] = field(default_factory=list)
    search_seconds: float = 0.0  # finding the passages (embedding, both searches, fusion)

    def to_json(self) -> dict[str, object]:
        return {
            "answer": self.text,
            "abstained": self.abstained,
            "sources": [
                {
                    "n": s.n,
                    "title": s.title,
                    "url": s.url,
                    "source": s.source,
                    "updated_at": s.updated_at.isoformat().replace("+00:00", "Z"),
                }
                for s in self.sources
            ],
        }


def abstention(question: str) -> Answer:
    return Answer(text=ABSTAIN_KO if is_korean(question) else ABSTAIN_EN, abstained=True)


# A pasted log or document is not a question: what follows this many characters is left out
# (embedding cost grows with length; a 40,000-character message held a worker for a minute).
MAX_QUESTION_CHARS = 2000


def search_query(question: str, history: Sequence[Turn]) -> str:
    """What to search for: a follow-up ("and for contractors?") carries the thread's last
    question with it, so retrieval sees the topic the follow-up leaves unsaid."""
    previous = [turn.text for turn in history if turn.role == "user"]
    return f"{previous[-1]}\n{question}" if previous else question


def relevant_hits(
    question: str, retrieval: Retrieval, close_similarity: float, floor_similarity: float
) -> list[Hit]:
    """Hits worth showing: close in meaning, or covering most of the question's terms."""
    question_terms = set(terms(question))
    kept: list[Hit] = []
    for hit in retrieval.hits:
        similarity = retrieval.dense_scores.get(hit.key)
        coverage = (
            len(question_terms & set(terms(f"{hit.breadcrumb}\n{hit.text}"))) / len(question_terms)
            if question_terms
            else 0.0
        )
        close = similarity is not None and similarity >= close_similarity
        not_far = similarity is None or similarity >= floor_similarity
        if close or (coverage >= MIN_TERM_COVERAGE and not_far):
            kept.append(hit)
    return kept


def check_citations(text: str, sources: Sequence[Hit]) -> tuple[str, list[SourceRef]]:
    """Drop citations of unknown sources; renumber the rest 1..m in order of first use.

    Passages of one document share one number, so the reader sees each document once.
    """
    numbers: dict[str, int] = {}  # document id -> its number in the answer
    cited: list[Hit] = []
    passages: dict[str, list[str]] = {}  # document id -> the cited passages' fingerprints

    def replace(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if not 1 <= n <= len(sources):
            return ""
        hit = sources[n - 1]
        if hit.document_id not in numbers:
            numbers[hit.document_id] = len(numbers) + 1
            cited.append(hit)
        prints = passages.setdefault(hit.document_id, [])
        if passage_print(hit.text) not in prints:
            prints.append(passage_print(hit.text))
        return f"[{numbers[hit.document_id]}]"

    cleaned = _CITATION.sub(replace, text)
    cleaned = re.sub(r"(\[\d+\])\1+", r"\1", cleaned)  # "[1][1]" after merging passages
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned).strip()
    return cleaned, [
        _ref(numbers[hit.document_id], hit, tuple(passages[hit.document_id])) for hit in cited
    ]


def _ref(n: int, hit: Hit, passages: tuple[str, ...] = ()) -> SourceRef:
    return SourceRef(
        n=n,
        title=hit.title,
        url=hit.url,
        source=hit.source,
        updated_at=hit.updated_at,
        document_id=hit.document_id,
        acl=hit.acl,
        version=hit.version,
        passages=passages,
    )


def extractive_text(question: str, hits: Sequence[Hit]) -> str:
    """The passages' blocks (paragraphs, tables, lists) that best match the question, cited.

    Whole blocks rather than sentences: a table quoted as a table, or a paragraph with its
    context, answers more questions than the best-matching sentence torn from its neighbours.
    A block is judged with its own section heading, and quoted only if it scores close to the
    best block, so a neighbouring section that merely shares the page's topic stays out.
    """
    question_terms = set(terms(question))
    candidates: list[tuple[float, float, int, int, str]] = []  # score, match, hit, position
    for number, hit in enumerate(hits[:EXTRACT_FROM_HITS], start=1):
        for position, (heading, block) in enumerate(_blocks(hit.text, hit.breadcrumb)):
            overlap = len(question_terms & set(terms(f"{heading}\n{block}")))
            if overlap == 0:
                continue
            match = overlap / (1 + 0.005 * len(terms(block)))
            candidates.append((match + 0.5 / number, match, number, position, block))
    if not candidates:
        candidates = [(0.0, 0.0, 1, 0, b) for _, b in _blocks(hits[0].text, "")[:1]]
    ranked = sorted(candidates, key=lambda c: -c[0])
    top_match = max(c[1] for c in ranked)
    best = [c for c in ranked[:EXTRACT_BLOCKS] if c[1] >= KEEP_FRACTION_OF_BEST * top_match]
    best.sort(key=lambda c: (c[2], c[3]))
    lead = "문서에서 찾은 내용입니다:" if is_korean(question) else "Here is what the documents say:"
    parts = [lead]
    for _, _, number, _, block in best:
        ends_in_table_or_code = block.rsplit("\n", 1)[-1].lstrip().startswith(("|", "```"))
        parts.append(f"{block}\n[{number}]" if ends_in_table_or_code else f"{block} [{number}]")
    return "\n\n".join(parts)


def _blocks(text: str, breadcrumb: str) -> list[tuple[str, str]]:
    """(section heading, block) pairs, blocks trimmed to a readable length."""
    blocks: list[tuple[str, str]] = []
    for heading, block in _split_blocks(text, breadcrumb):
        if len(block) < 4:
            continue
        if not block.startswith(("|", "```")) and len(block) > MAX_QUOTE_CHARS:
            block = block[:MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
        if blocks and blocks[-1][1].endswith(":"):
            # "Roll back with:" belongs with the command or table that follows it.
            blocks[-1] = (blocks[-1][0], f"{blocks[-1][1]}\n\n{block}")
        else:
            blocks.append((heading, block))
    return blocks


# A Markdown heading needs a space after its hashes: "#fleet-releases" is a channel name.
_HEADING_LINE = re.compile(r"^\s{0,3}#{1,6}(?:\s|$)")


def _split_blocks(text: str, breadcrumb: str) -> list[tuple[str, str]]:
    """Blank-line separated blocks under their nearest heading; fenced code kept whole."""
    blocks: list[tuple[str, str]] = []
    current: list[str] = []
    heading = breadcrumb
    in_fence = False

    def close() -> None:
        block = "\n".join(current).strip()
        if block:
            blocks.append((heading, block))
        current.clear()

    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if in_fence or line.lstrip().startswith(("```", "~~~")):
            current.append(line)
        elif not line.strip():
            close()
        elif _HEADING_LINE.match(line):
            close()
            heading = line.lstrip("# ").strip()
        else:
            current.append(line)
    close()
    return blocks


@dataclass(frozen=True)
class Writer:
    """The chat model and the token budget it writes answers within."""

    chat: ChatModel
    counter: TokenCounter
    context_tokens: int
    answer_tokens: int

    def write(
        self, question: str, hits: Sequence[Hit], history: Sequence[Turn]
    ) -> tuple[str, list[Hit]]:
        """The model's answer and the numbered sources it was shown."""
        prompt = build_prompt(
            question, hits, history, self.counter, self.context_tokens, self.answer_tokens
        )
        return self.chat.complete(prompt.messages), prompt.sources

    def write_streaming(
        self, question: str, hits: Sequence[Hit], history: Sequence[Turn], on_text: TextSink
    ) -> tuple[str, list[Hit]]:
        """The same, with the reply passed to `on_text` in pieces as the model writes it
        (citations of sources it was not given left out)."""
        prompt = build_prompt(
            question, hits, history, self.counter, self.context_tokens, self.answer_tokens
        )
        shown = CitationFilter(len(prompt.sources))
        pieces: list[str] = []
        for piece in self.chat.stream(prompt.messages):
            pieces.append(piece)
            visible = shown.feed(piece)
            if visible:
                on_text(visible)
        rest = shown.flush()
        if rest:
            on_text(rest)
        return "".join(pieces), prompt.sources


class AnswerService:
    """Retrieves, writes (with a chat model) or extracts, and checks the answer's citations."""

    def __init__(self, retriever: Retriever, writer: Writer | None) -> None:
        self.retriever = retriever
        self.writer = writer

    @property
    def writes(self) -> bool:
        """A chat model writes the answers (which can then be shown while written)."""
        return self.writer is not None

    def answer(
        self,
        question: str,
        audience: Audience,
        history: Sequence[Turn] = (),
        on_text: TextSink | None = None,
        curation: Curation = UNCURATED,
    ) -> Answer:
        """Raises LLMError or IndexUnavailable when a dependency is down; callers explain it.

        With `on_text`, a chat model's reply is also passed on in pieces as it is written; the
        returned answer is the checked one, which is what is finally shown. `curation` is the
        conversation's scope and the admins' document preferences."""
        started = time.perf_counter()
        question, hits = self._relevant(question, audience, history, curation)
        searched = time.perf_counter() - started
        return replace(self._written(question, hits, history, on_text), search_seconds=searched)

    def private_addon(
        self,
        question: str,
        asker: Audience,
        audience: Audience,
        history: Sequence[Turn] = (),
        curation: Curation = UNCURATED,
    ) -> Answer | None:
        """The asker's own answer, when what they alone may open changes it: it cites at least
        one passage `audience` may not open. None otherwise, without asking the model when
        nothing hidden from the audience is even relevant."""
        question, hits = self._relevant(question, asker, history, curation)
        if all(audience.may_read(hit.acl) for hit in hits):
            return None
        answer = self._written(question, hits, history)
        hidden = [ref for ref in answer.sources if not audience.may_read(ref.acl)]
        return answer if hidden and not answer.abstained else None

    def _relevant(
        self, question: str, audience: Audience, history: Sequence[Turn], curation: Curation
    ) -> tuple[str, list[Hit]]:
        question = question[:MAX_QUESTION_CHARS]
        query = search_query(question, history)[:MAX_QUESTION_CHARS]
        retrieval = self.retriever.search(query, audience, MAX_SOURCES, curation=curation)
        embedder = self.retriever.embedder
        hits = relevant_hits(query, retrieval, embedder.close_similarity, embedder.floor_similarity)
        return question, hits

    def _written(
        self,
        question: str,
        hits: list[Hit],
        history: Sequence[Turn],
        on_text: TextSink | None = None,
    ) -> Answer:
        if not hits:
            return abstention(question)
        if self.writer is None:
            text, shown = extractive_text(question, hits), hits
        elif on_text is not None:
            text, shown = self.writer.write_streaming(question, hits, history, on_text)
        else:
            text, shown = self.writer.write(question, hits, history)
        cleaned, refs = check_citations(text, shown)
        if not refs:
            return abstention(question)
        return Answer(text=cleaned, abstained=False, sources=refs)
