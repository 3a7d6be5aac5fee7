from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import Document
from workers.rag.chunking import Chunker
from workers.rag.tokens import counter_for_model

COUNTER = counter_for_model("gpt-4o-mini")
WORDS = [
    "leave",
    "policy",
    "deploy",
    "rollback",
    "휴가",
    "신청은",
    "파이프라인이",
    "승인",
    "VPN-E42",
]


def document(text: str, title: str = "Guide") -> Document:
    return Document(
        id="files:guide.md",
        source="files",
        title=title,
        url="file:///guide.md",
        text=text,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        version="v1",
        acl=frozenset({"public"}),
    )


paragraph = st.lists(st.sampled_from(WORDS), min_size=1, max_size=400).map(" ".join)
korean_run = st.text(alphabet="가나다라마바사아자차카타파하", min_size=1, max_size=3000)
code = st.lists(
    st.sampled_from(["x = 1", "# not a heading", "echo 휴가", "", "deploy --all"]),
    min_size=1,
    max_size=300,
).map(lambda ls: "```bash\n" + "\n".join(ls) + "\n```")
table = st.lists(st.sampled_from(WORDS), min_size=1, max_size=200).map(
    lambda cells: (
        "| key | value |\n| --- | --- |\n"
        + "\n".join(f"| {c} | {c} {i} |" for i, c in enumerate(cells))
    )
)
heading = st.tuples(st.integers(1, 4), st.sampled_from(WORDS)).map(
    lambda t: "#" * t[0] + " " + t[1]
)
markdown = st.lists(
    st.one_of(paragraph, korean_run, code, table, heading), min_size=1, max_size=12
).map("\n\n".join)


@settings(max_examples=60, deadline=None)
@given(markdown, st.integers(120, 600))
def test_no_chunk_exceeds_the_budget(text: str, max_tokens: int) -> None:
    chunker = Chunker(COUNTER, max_tokens=max_tokens, target_tokens=max_tokens * 4 // 5)
    for chunk in chunker.chunk(document(text)):
        assert COUNTER.count(chunk.embed_text) <= max_tokens


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(paragraph, code), min_size=1, max_size=6).map("\n\n".join))
def test_code_blocks_stay_fenced_and_whole_lines(text: str) -> None:
    chunks = Chunker(COUNTER, max_tokens=200, target_tokens=160).chunk(document(text))
    original_lines = [line for line in re.findall(r"```bash\n(.*?)\n```", text, re.S)]
    rebuilt: list[str] = []
    for chunk in chunks:
        assert chunk.text.count("```") % 2 == 0, "every piece of code is a closed fence"
        rebuilt += re.findall(r"```bash\n(.*?)\n```", chunk.text, re.S)
    assert "\n".join(rebuilt).split("\n") == "\n".join(original_lines).split("\n")


def test_long_tables_repeat_their_header() -> None:
    rows = "\n".join(f"| row {i} | value {i} with several words in it |" for i in range(300))
    text = f"# Limits\n\n| Item | Limit |\n| --- | --- |\n{rows}\n"
    chunks = Chunker(COUNTER, max_tokens=300, target_tokens=240).chunk(document(text))
    table_chunks = [c for c in chunks if "| row" in c.text]
    assert len(table_chunks) > 1
    for chunk in table_chunks:
        lines = [line for line in chunk.text.split("\n") if line.startswith("|")]
        assert lines[:2] == ["| Item | Limit |", "| --- | --- |"]
    all_rows = [
        line for c in table_chunks for line in c.text.split("\n") if line.startswith("| row")
    ]
    assert len(all_rows) == 300


def test_breadcrumb_and_ids() -> None:
    text = "# Leave Policy\n\nIntro.\n\n## Sick leave\n\n" + "Doctor's note rules. " * 150
    chunks = Chunker(COUNTER).chunk(document(text, title="Leave Policy"))
    assert [c.id for c in chunks] == [f"files:guide.md#{i}" for i in range(len(chunks))]
    assert chunks[-1].breadcrumb == "Leave Policy › Sick leave"
    assert chunks[-1].embed_text.startswith("Leave Policy › Sick leave\n\n")
    again = Chunker(COUNTER).chunk(document(text, title="Leave Policy"))
    assert again == chunks


def test_small_sections_share_a_chunk_and_large_ones_start_their_own() -> None:
    big = "Parental leave details. " * 120
    text = f"# Policy\n\n## A\n\nShort a.\n\n## B\n\nShort b.\n\n## C\n\n{big}"
    chunks = Chunker(COUNTER).chunk(document(text))
    assert "Short a." in chunks[0].text and "Short b." in chunks[0].text
    assert chunks[1].text.startswith("## C")


def test_a_heading_is_never_left_alone_at_the_end_of_a_chunk() -> None:
    text = "# Policy\n\nIntro line.\n\n## Details\n\n" + "A long sentence about leave. " * 200
    chunks = Chunker(COUNTER, max_tokens=300, target_tokens=240).chunk(document(text))
    for chunk in chunks:
        assert not chunk.text.rstrip().split("\n")[-1].startswith("#")
    assert any(c.text.startswith("## Details\n\nA long sentence") for c in chunks)


def test_a_code_block_at_the_limit_is_not_pushed_over_by_its_breadcrumb() -> None:
    # Token counts do not add up across "Guide\n\n" and the opening fence: this block fits the
    # budget left after the breadcrumb, yet the joined text counts one token more.
    text = "```bash\n" + "x = 1\n" * 23 + "```"
    chunks = Chunker(COUNTER, max_tokens=120, target_tokens=96).chunk(document(text))
    assert chunks and all(COUNTER.count(c.embed_text) <= 120 for c in chunks)
    assert all(c.text.startswith("```bash\n") and c.text.endswith("\n```") for c in chunks)
