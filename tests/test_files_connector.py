from __future__ import annotations

import io
import os
import time
from pathlib import Path

import docx
import pytest

from connectors.base import Checkpoint, ConnectorError, Document, Skipped
from connectors.files import FilesConnector
from tests.support import text_pdf


def poll_all(connector: FilesConnector, checkpoint: Checkpoint | None = None) -> dict[str, object]:
    return {getattr(item, "id", "checkpoint"): item for item in connector.poll(checkpoint)}


def test_every_supported_format_becomes_markdown(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(
        "Intro line\n\n# Deploy Guide\n\nRun it.\n", encoding="utf-8"
    )
    (tmp_path / "page.html").write_text(
        "<html><head><title>Laptops</title><script>x()</script></head>"
        "<body><p>Replace every <b>three</b> years.</p></body></html>",
        encoding="utf-8",
    )
    (tmp_path / "notes.txt").write_text("plain text notes", encoding="utf-8")
    (tmp_path / "scan.pdf").write_bytes(text_pdf(["Expense limit is 180 EUR per night."]))
    word = docx.Document()
    word.add_heading("Onboarding", level=1)
    word.add_paragraph("Meet your buddy on day two.")
    table = word.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Day", "Task"
    table.cell(1, 0).text, table.cell(1, 1).text = "Mon", "Laptop"
    buffer = io.BytesIO()
    word.save(buffer)
    (tmp_path / "onboarding.docx").write_bytes(buffer.getvalue())

    items = poll_all(FilesConnector(tmp_path))
    guide, page, notes, scan, onboarding = (
        items[f"files:{name}"]
        for name in ("guide.md", "page.html", "notes.txt", "scan.pdf", "onboarding.docx")
    )
    assert isinstance(guide, Document) and guide.title == "Deploy Guide"
    assert guide.url == (tmp_path / "guide.md").resolve().as_uri()
    assert guide.acl == frozenset({"public"}) and guide.updated_at.tzinfo is not None
    assert isinstance(page, Document) and page.title == "Laptops"
    assert "**three**" in page.text and "x()" not in page.text
    assert isinstance(notes, Document) and notes.title == "notes"
    assert isinstance(scan, Document) and "180 EUR" in scan.text
    assert isinstance(onboarding, Document) and onboarding.title == "Onboarding"
    assert "| Day | Task |" in onboarding.text and "| Mon | Laptop |" in onboarding.text


def test_unreadable_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("# Fine\n\ntext", encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (tmp_path / "broken.docx").write_bytes(b"not a zip")
    (tmp_path / "empty.md").write_text("   \n", encoding="utf-8")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.md").write_text("# secret", encoding="utf-8")

    items = poll_all(FilesConnector(tmp_path))
    assert isinstance(items["files:ok.md"], Document)
    for name in ("broken.pdf", "broken.docx", "empty.md", "photo.png"):
        item = items[f"files:{name}"]
        assert isinstance(item, Skipped) and item.reason
    assert "files:.hidden.md" not in items
    assert isinstance(items["checkpoint"], Checkpoint)


def test_a_folder_acl_restricts_its_files_and_fails_closed_when_empty(tmp_path: Path) -> None:
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / ".acl").write_text("# people ops\ngroup:files:hr\nuser:dana@acme.com\n")
    (tmp_path / "hr" / "sub").mkdir()
    (tmp_path / "hr" / "sub" / "bands.md").write_text("# Bands", encoding="utf-8")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / ".acl").write_text("\n")
    (tmp_path / "locked" / "x.md").write_text("# X", encoding="utf-8")

    items = poll_all(FilesConnector(tmp_path))
    bands = items["files:hr/sub/bands.md"]
    assert isinstance(bands, Document)
    assert bands.acl == frozenset({"group:files:hr", "user:dana@acme.com"})
    assert bands.breadcrumbs == ("hr", "sub")
    assert bands.places == ("hr/", "hr/sub/"), "each folder is a place for channel scopes"
    locked = items["files:locked/x.md"]
    assert isinstance(locked, Document) and locked.acl == frozenset()


def test_incremental_poll_reads_only_files_changed_since_the_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A", encoding="utf-8")
    (tmp_path / "b.md").write_text("# B changed", encoding="utf-8")
    # A checkpoint taken a little in the future: a.md (written now) is older than it,
    # b.md carries a modification time after it.
    checkpoint = Checkpoint("files", str(time.time_ns() + 10 * 1_000_000_000))
    future = time.time() + 60
    os.utime(tmp_path / "b.md", (future, future))

    later = list(FilesConnector(tmp_path).poll(checkpoint))
    assert [d.id for d in later if isinstance(d, Document)] == ["files:b.md"]
    assert isinstance(later[-1], Checkpoint) and int(later[-1].value) < int(checkpoint.value)


def test_a_missing_folder_is_a_connector_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="not a readable folder"):
        list(FilesConnector(tmp_path / "nope").poll(None))


def test_slides_and_spreadsheets_become_sections_and_tables(tmp_path: Path) -> None:
    from openpyxl import Workbook
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Quarterly goals"
    slide.placeholders[1].text = "Ship the Teams bot"
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text = "Goal", "Owner"
    table.cell(1, 0).text, table.cell(1, 1).text = "Teams", "Dana"
    buffer = io.BytesIO()
    deck.save(buffer)
    (tmp_path / "goals.pptx").write_bytes(buffer.getvalue())

    book = Workbook()
    sheet = book.active
    sheet.title = "Budget"
    sheet.append(["Team", "EUR"])
    sheet.append(["Platform", 120000])
    book.create_sheet("Headcount").append(["Team", "People"])
    buffer = io.BytesIO()
    book.save(buffer)
    (tmp_path / "budget.xlsx").write_bytes(buffer.getvalue())

    items = poll_all(FilesConnector(tmp_path))
    goals, budget = items["files:goals.pptx"], items["files:budget.xlsx"]
    assert isinstance(goals, Document) and goals.title == "Slide 1: Quarterly goals"
    assert "Ship the Teams bot" in goals.text and "| Teams | Dana |" in goals.text
    assert isinstance(budget, Document)
    assert "## Budget" in budget.text and "| Platform | 120000 |" in budget.text
    assert "## Headcount" in budget.text, "every sheet, not just the first"
