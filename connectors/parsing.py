"""File formats -> Markdown with headings kept, so chunking can follow the document's structure."""

from __future__ import annotations

import io
import re
import zipfile

from bs4 import BeautifulSoup
from bs4.element import CData, Comment, NavigableString
from markdownify import markdownify

from connectors.limits import MB, ParseLimits


class UnreadableDocument(Exception):
    """The bytes could not be turned into text (corrupt, encrypted, unsupported, empty)."""


MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".text", ".rst", ".csv", ".log"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
SUPPORTED_SUFFIXES = (
    MARKDOWN_SUFFIXES
    | TEXT_SUFFIXES
    | HTML_SUFFIXES
    | frozenset({".pdf", ".docx", ".pptx", ".xlsx"})
)
# Office formats are zip archives of XML: their size on disk says little about what they cost.
ARCHIVE_SUFFIXES = frozenset({".docx", ".pptx", ".xlsx"})
MAX_SHEET_ROWS = 2000


def to_markdown(data: bytes, suffix: str, limits: ParseLimits | None = None) -> str:
    """Convert file content to Markdown according to its (lower-case, dotted) suffix.

    Whatever goes wrong inside a format library (malformed XML, a truncated stream, a bug it
    trips over) becomes `UnreadableDocument`: one bad file is skipped, never the whole sync.
    """
    limits = limits or ParseLimits()
    try:
        return _to_markdown(data, suffix.lower(), limits)
    except UnreadableDocument:
        raise
    except MemoryError as exc:
        raise UnreadableDocument("ran out of memory while parsing") from exc
    except RecursionError as exc:
        raise UnreadableDocument("nested too deeply to parse") from exc
    except Exception as exc:
        raise UnreadableDocument(f"could not be parsed ({exc.__class__.__name__})") from exc


def _to_markdown(data: bytes, suffix: str, limits: ParseLimits) -> str:
    if len(data) > limits.max_bytes:
        raise UnreadableDocument(f"larger than {limits.max_bytes // MB} MB")
    if suffix in ARCHIVE_SUFFIXES:
        check_archive(data, limits)
    if suffix in MARKDOWN_SUFFIXES or suffix in TEXT_SUFFIXES:
        text = _decode(data)
    elif suffix in HTML_SUFFIXES:
        text = html_to_markdown(_decode(data))
    elif suffix == ".pdf":
        text = pdf_to_markdown(data)
    elif suffix == ".docx":
        text = docx_to_markdown(data)
    elif suffix == ".pptx":
        text = pptx_to_markdown(data)
    elif suffix == ".xlsx":
        text = xlsx_to_markdown(data)
    else:
        raise UnreadableDocument(f"unsupported file type {suffix or '(none)'}")
    text = tidy(text)
    if not text.strip():
        raise UnreadableDocument("no text found")
    return text


def check_archive(data: bytes, limits: ParseLimits) -> None:
    """Refuse a zip whose directory declares too many entries or too much content.

    Python's zip reader never inflates an entry past its declared size, so the directory bounds
    what parsing can inflate: a zip bomb is refused before a byte of it is decompressed.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnreadableDocument(f"not a valid Office file: {exc}") from exc
    if len(entries) > limits.max_entries:
        raise UnreadableDocument(
            f"archive has {len(entries)} entries, above the limit of {limits.max_entries}"
        )
    inflated = sum(entry.file_size for entry in entries)
    if inflated > limits.max_inflated_bytes:
        raise UnreadableDocument(
            f"archive inflates to {inflated // MB} MB, above the limit of "
            f"{limits.max_inflated_bytes // MB} MB"
        )


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableDocument("binary content, not text")
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableDocument("text is neither UTF-8 nor CP949")


def tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def collapse_whitespace(soup: BeautifulSoup) -> None:
    """Line breaks inside a paragraph are spaces, as a browser shows them; only <pre> keeps
    its lines. Otherwise a wrapped line starting with "#tag" or "1." turns into Markdown."""
    for text in soup.find_all(string=True):
        if isinstance(text, Comment | CData) or text.find_parent(["pre", "code"]) is not None:
            continue
        collapsed = _WHITESPACE.sub(" ", str(text))
        if collapsed != text:
            text.replace_with(NavigableString(collapsed))


_WHITESPACE = re.compile(r"[ \t\r\n\f]+")


def html_to_markdown(html: str) -> str:
    """HTML -> Markdown (ATX headings, fenced code); scripts, styles and navigation dropped."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "noscript", "template"]):
        tag.decompose()
    collapse_whitespace(soup)
    body = soup.body or soup
    return str(markdownify(str(body), heading_style="ATX", code_language="", bullets="-"))


def html_title(html: str) -> str | None:
    """The <title> of an HTML page, if it has one."""
    soup = BeautifulSoup(html, "html.parser")
    if soup.title and soup.title.string:
        return soup.title.string.strip() or None
    return None


def pdf_to_markdown(data: bytes) -> str:
    """PDF -> text, one paragraph block per page (PDFs carry no reliable heading structure)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument("PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise UnreadableDocument(f"PDF could not be read: {exc}") from exc
    return "\n\n".join(page.strip() for page in pages if page.strip())


def docx_to_markdown(data: bytes) -> str:
    """DOCX -> Markdown: Heading styles become #-headings, tables become pipe tables."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnreadableDocument(f"DOCX could not be read: {exc}") from exc

    from docx.table import Table
    from docx.text.paragraph import Paragraph

    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            lines.append(_docx_paragraph(block))
        elif isinstance(block, Table):
            lines.append(_docx_table(block))
    return "\n\n".join(line for line in lines if line.strip())


def _docx_paragraph(paragraph: object) -> str:
    from docx.text.paragraph import Paragraph

    assert isinstance(paragraph, Paragraph)
    text = paragraph.text.strip()
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style == "Title":
        return f"# {text}"
    match = re.match(r"Heading (\d)", style)
    if match and text:
        return "#" * min(int(match.group(1)), 6) + " " + text
    if style.startswith("List") and text:
        return f"- {text}"
    return text


def _docx_table(table: object) -> str:
    from docx.table import Table

    assert isinstance(table, Table)
    rows = [[cell.text for cell in row.cells] for row in table.rows]
    return _pipe_table(rows) if rows else ""


def pptx_to_markdown(data: bytes) -> str:
    """PPTX -> one section per slide: its title as a heading, then its text and tables."""
    import zipfile

    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    try:
        deck = Presentation(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnreadableDocument(f"PPTX could not be read: {exc}") from exc
    sections: list[str] = []
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None else ""
        parts = [f"## Slide {number}" + (f": {title}" if title else "")]
        for shape in slide.shapes:
            if shape == title_shape:
                continue
            if shape.has_text_frame and shape.text_frame.text.strip():
                parts.append(shape.text_frame.text.strip())
            if getattr(shape, "has_table", False) and shape.has_table:
                rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
                parts.append(_pipe_table(rows))
        sections.append("\n\n".join(parts))
    return "\n\n".join(sections)


def xlsx_to_markdown(data: bytes) -> str:
    """XLSX -> one section per sheet, its used range as a table (values, not formulas)."""
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UnreadableDocument(f"XLSX could not be read: {exc}") from exc
    sections: list[str] = []
    for sheet in book.worksheets:
        rows = [
            ["" if value is None else str(value) for value in row]
            for row in sheet.iter_rows(values_only=True, max_row=MAX_SHEET_ROWS)
        ]
        rows = [row for row in rows if any(cell.strip() for cell in row)]
        if rows:
            sections.append(f"## {sheet.title}\n\n" + _pipe_table(rows))
    book.close()
    return "\n\n".join(sections)


def _pipe_table(rows: list[list[str]]) -> str:
    width = max(len(row) for row in rows)
    cells = [
        [c.strip().replace("\n", " ").replace("|", "\\|") for c in row] + [""] * (width - len(row))
        for row in rows
    ]
    out = ["| " + " | ".join(cells[0]) + " |", "|" + " --- |" * width]
    out += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(out)


def first_heading(markdown: str) -> str | None:
    """The text of the first Markdown heading outside code fences, if any."""
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if not in_fence:
            match = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
            if match:
                return match.group(1).strip()
    return None
