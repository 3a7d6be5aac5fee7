"""Markdown -> token-sized chunks that follow the document's headings.

Rules a reader of the chunks relies on:
- no chunk's embedded text (breadcrumb + passage) exceeds `max_tokens` of the chat tokenizer;
- a fenced code block is never cut mid-line and every piece of it is a valid fenced block
  (a block larger than one chunk is split on line boundaries, each piece re-fenced);
- a table is split between rows, each piece repeating the header row;
- small neighbouring sections share a chunk, large ones start their own;
- chunk ids are `<document id>#<ordinal>`, stable for the same text.

Headings are split here rather than with LangChain's header splitter because that one drops
blank lines, merging paragraphs and tables; LangChain's recursive splitter still sizes prose.
This is the only module that imports a text-splitter library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from connectors.base import Document
from workers.rag.tokens import TokenCounter

DEFAULT_MAX_TOKENS = 500
DEFAULT_TARGET_TOKENS = 400
# A section smaller than this joins the chunk before it instead of starting a new one.
MIN_SECTION_TOKENS = 120
# Token counts do not add up across a join: BPE may merge the characters on either side of a
# seam (the breadcrumb's "\n\n" and a fence's backticks, say) and count one more. A document
# whose chunks come out over the limit is chunked again with this much room at each seam.
SEAM_TOKENS = 2
BREADCRUMB_SEPARATOR = " › "

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_PROSE_SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "다. ", "。", "; ", ", ", " ", ""]


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, ready to embed and to cite."""

    id: str
    document_id: str
    ordinal: int
    headings: tuple[str, ...]
    text: str
    breadcrumb: str

    @property
    def embed_text(self) -> str:
        """What the embedders see: the breadcrumb gives a passage its context."""
        return f"{self.breadcrumb}\n\n{self.text}" if self.breadcrumb else self.text


@dataclass(frozen=True)
class _Block:
    kind: str  # "heading" | "code" | "table" | "prose"
    text: str


@dataclass(frozen=True)
class _Section:
    headings: tuple[str, ...]
    blocks: tuple[_Block, ...]


@dataclass(frozen=True)
class _Piece:
    headings: tuple[str, ...]
    text: str
    starts_section: bool


class Chunker:
    """Splits documents into chunks sized by `counter` (the chat model's tokenizer)."""

    def __init__(
        self,
        counter: TokenCounter,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        target_tokens: int = DEFAULT_TARGET_TOKENS,
    ) -> None:
        if not 0 < target_tokens <= max_tokens:
            raise ValueError("need 0 < target_tokens <= max_tokens")
        self.counter = counter
        self.max_tokens = max_tokens
        self.target_tokens = target_tokens

    def chunk(self, document: Document) -> list[Chunk]:
        chunks = self._chunk(document, seam=0)
        if any(self.counter.count(c.embed_text) > self.max_tokens for c in chunks):
            chunks = self._chunk(document, seam=SEAM_TOKENS)
        return chunks

    def _chunk(self, document: Document, seam: int) -> list[Chunk]:
        pieces: list[_Piece] = []
        for section in _sections(document.text):
            starts = section.blocks[0].kind == "heading"
            # Room for the breadcrumb, and for the heading line that may join any piece.
            overhead = self._breadcrumb(document.title, section.headings) + "\n\n"
            if starts:
                overhead += section.blocks[0].text + "\n\n"
            room = self.max_tokens - self.counter.count(overhead) - seam
            budget = max(room, self.max_tokens // 4)
            texts = [text for block in section.blocks for text in self._fit(block, budget, seam)]
            pieces.extend(
                _Piece(section.headings, text, starts and i == 0) for i, text in enumerate(texts)
            )
        return self._pack(document, pieces)

    def _breadcrumb(self, title: str, headings: tuple[str, ...]) -> str:
        parts = [title.strip()] if title.strip() else []
        parts += [h for h in headings if h.strip() and h.strip() != title.strip()]
        crumb = BREADCRUMB_SEPARATOR.join(parts)
        # A pathological breadcrumb must not crowd out the passage itself.
        return self.counter.truncate(crumb, self.max_tokens // 4)

    def _pack(self, document: Document, pieces: list[_Piece]) -> list[Chunk]:
        chunks: list[Chunk] = []
        current: list[_Piece] = []

        def make(group: list[_Piece]) -> Chunk:
            headings = _common_prefix([p.headings for p in group])
            ordinal = len(chunks)
            return Chunk(
                id=f"{document.id}#{ordinal}",
                document_id=document.id,
                ordinal=ordinal,
                headings=headings,
                text="\n\n".join(p.text for p in group),
                breadcrumb=self._breadcrumb(document.title, headings),
            )

        for piece in pieces:
            if current:
                candidate = make([*current, piece])
                size = self.counter.count(candidate.embed_text)
                section_break = (
                    piece.starts_section
                    and self.counter.count(make(current).text) >= MIN_SECTION_TOKENS
                )
                if size > self.target_tokens or section_break:
                    # A heading travels with the start of its content, never alone at a chunk's end.
                    carried = (
                        [current.pop()] if len(current) > 1 and _is_heading(current[-1]) else []
                    )
                    chunks.append(make(current))
                    current = carried
            current.append(piece)
        if current:
            chunks.append(make(current))
        # A heading with nothing after it at the very end carries no information of its own.
        return [c for c in chunks if c.text.strip()]

    def _fit(self, block: _Block, budget: int, seam: int) -> list[str]:
        if self.counter.count(block.text) <= budget:
            return [block.text]
        if block.kind == "code":
            return self._split_code(block.text, budget, seam)
        if block.kind == "table":
            return self._split_table(block.text, budget)
        return self._split_prose(block.text, budget)

    def _split_code(self, text: str, budget: int, seam: int) -> list[str]:
        lines = text.split("\n")
        opening, closing = lines[0], lines[-1] if len(lines) > 1 else lines[0][:3]
        body = lines[1:-1] if _FENCE.match(lines[-1]) else lines[1:]

        def fenced(group: list[str]) -> str:
            return "\n".join([opening, *group, closing])

        inner_budget = budget - self.counter.count(f"{opening}\n\n{closing}") - 2 * seam
        pieces: list[str] = []
        group: list[str] = []
        for line in body:
            for part in self._hard_split(line, inner_budget):
                if group and self.counter.count(fenced([*group, part])) > budget:
                    pieces.append(fenced(group))
                    group = []
                group.append(part)
        if group:
            pieces.append(fenced(group))
        return pieces

    def _split_table(self, text: str, budget: int) -> list[str]:
        lines = text.split("\n")
        header, rows = lines[:2], lines[2:]
        header_text = "\n".join(header)
        if self.counter.count(header_text) > budget // 2:
            return self._split_prose(text, budget)
        pieces: list[str] = []
        group: list[str] = []
        for row in rows:
            if self.counter.count("\n".join([*header, row])) > budget:
                if group:
                    pieces.append("\n".join([*header, *group]))
                    group = []
                pieces.extend(self._split_prose(row, budget))
                continue
            if group and self.counter.count("\n".join([*header, *group, row])) > budget:
                pieces.append("\n".join([*header, *group]))
                group = []
            group.append(row)
        if group:
            pieces.append("\n".join([*header, *group]))
        return pieces

    def _split_prose(self, text: str, budget: int) -> list[str]:
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=budget,
            chunk_overlap=0,
            length_function=self.counter.count,
            separators=_PROSE_SEPARATORS,
            keep_separator="end",
        )
        pieces: list[str] = []
        for piece in splitter.split_text(text):
            pieces.extend(self._hard_split(piece.strip(), budget))
        return [p for p in pieces if p.strip()]

    def _hard_split(self, text: str, budget: int) -> list[str]:
        """Token-boundary slices: the last resort for a run of text with no separator."""
        pieces: list[str] = []
        while self.counter.count(text) > budget:
            head = self.counter.truncate(text, budget)
            if not head:
                head = text[:1]
            pieces.append(head)
            text = text[len(head) :]
        if text:
            pieces.append(text)
        return pieces


def _is_heading(piece: _Piece) -> bool:
    return piece.starts_section and "\n" not in piece.text and bool(_HEADING.match(piece.text))


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    prefix = paths[0]
    for path in paths[1:]:
        length = 0
        while length < min(len(prefix), len(path)) and prefix[length] == path[length]:
            length += 1
        prefix = prefix[:length]
    return prefix


def _sections(markdown: str) -> list[_Section]:
    """Split on headings outside code fences; each section keeps its heading line first."""
    sections: list[_Section] = []
    headings: list[tuple[int, str]] = []
    blocks: list[_Block] = []

    def close() -> None:
        if blocks:
            sections.append(_Section(tuple(h for _, h in headings), tuple(blocks)))

    for block in _blocks(markdown):
        match = _HEADING.match(block.text) if block.kind == "heading" else None
        if match:
            close()
            blocks = []
            level = len(match.group(1))
            headings = [(lvl, h) for lvl, h in headings if lvl < level]
            headings.append((level, match.group(2).strip()))
        blocks.append(block)
    close()
    return sections


def _blocks(markdown: str) -> list[_Block]:
    """Markdown -> blocks: headings, fenced code, pipe tables, and prose paragraphs."""
    lines = markdown.replace("\r\n", "\n").split("\n")
    blocks: list[_Block] = []
    prose: list[str] = []

    def flush_prose() -> None:
        if prose:
            blocks.append(_Block("prose", "\n".join(prose).strip("\n")))
            prose.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush_prose()
            marker = fence.group(1)
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(marker):
                j += 1
            block_lines = lines[i : j + 1] if j < len(lines) else [*lines[i:], marker]
            blocks.append(_Block("code", "\n".join(block_lines)))
            i = j + 1
            continue
        if _HEADING.match(line):
            flush_prose()
            blocks.append(_Block("heading", line.strip()))
        elif (
            line.lstrip().startswith("|")
            and i + 1 < len(lines)
            and _TABLE_SEPARATOR.match(lines[i + 1])
        ):
            flush_prose()
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            blocks.append(_Block("table", "\n".join(lines[i:j])))
            i = j
            continue
        elif not line.strip():
            flush_prose()
        else:
            prose.append(line)
        i += 1
    flush_prose()
    return blocks
