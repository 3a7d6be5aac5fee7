"""Test doubles that implement our protocols (never patches of our code)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tests.fakes.openai_api import EMBED_DIM, hashed_vector
from workers.rag.embed import Vectors


class HashEmbedder:
    """A fast deterministic embedder; counts what it is asked to embed."""

    name = "test-hash"
    dim = EMBED_DIM
    close_similarity = 0.6
    floor_similarity = 0.2
    same_question_similarity = 0.8

    def __init__(self) -> None:
        self.passages_embedded = 0
        self.batches = 0

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.passages_embedded += len(texts)
        self.batches += 1
        return np.asarray([hashed_vector(t) for t in texts], dtype=np.float32).reshape(-1, self.dim)

    def embed_query(self, text: str) -> Vectors:
        return np.asarray(hashed_vector(text), dtype=np.float32)


def text_pdf(lines: list[str]) -> bytes:
    """A minimal valid one-page PDF showing `lines` in Helvetica (ASCII only)."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops += [f"({escaped}) Tj", "0 -16 Td"]
    ops.append("ET")
    stream = "\n".join(ops).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
