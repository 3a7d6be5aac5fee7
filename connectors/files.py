"""The files connector: a folder of Markdown, HTML, text, PDF and DOCX files.

Files are readable by everyone (`public`) unless a `.acl` file in their folder or an ancestor
folder lists principals, one per line; the nearest `.acl` wins. Incremental polls read only files
whose mtime or ctime moved past the last checkpoint (ctime catches copies that keep an old mtime).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import Checkpoint, ConnectorError, Document, PollItem, Skipped
from connectors.parsing import (
    HTML_SUFFIXES,
    SUPPORTED_SUFFIXES,
    UnreadableDocument,
    first_heading,
    html_title,
    to_markdown,
)

log = logging.getLogger(__name__)

SOURCE = "files"
ACL_FILE = ".acl"
DEFAULT_ACL = frozenset({"public"})
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# File timestamps come from a coarse kernel clock (and network file systems round to seconds),
# so a file written just after a poll began can carry an earlier time. Files this close to the
# checkpoint are read again; the sync's version check keeps that from re-embedding them.
TIMESTAMP_SLACK_NS = 5 * 1_000_000_000


class FilesConnector:
    """Yields one Document per readable file under `root`."""

    name = SOURCE
    listing_is_cheap = True

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root.resolve()
        self.max_bytes = max_bytes

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        started_ns = time.time_ns()
        since_ns = int(checkpoint.value) - TIMESTAMP_SLACK_NS if checkpoint is not None else None
        for path in self._candidate_files():
            stat = path.stat()
            if since_ns is not None and max(stat.st_mtime_ns, stat.st_ctime_ns) < since_ns:
                continue
            yield self._read(path, stat.st_size, stat.st_mtime)
        yield Checkpoint(SOURCE, str(started_ns))

    def list_ids(self) -> Iterator[str]:
        for path in self._candidate_files():
            yield self.document_id(path)

    def document_id(self, path: Path) -> str:
        return f"{SOURCE}:{path.relative_to(self.root).as_posix()}"

    def _candidate_files(self) -> Iterator[Path]:
        if not self.root.is_dir():
            raise ConnectorError(f"FILES_PATH {self.root} is not a readable folder")
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if not filename.startswith("."):
                    yield Path(dirpath) / filename

    def _read(self, path: Path, size: int, mtime: float) -> Document | Skipped:
        doc_id = self.document_id(path)
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            return Skipped(doc_id, f"unsupported file type {suffix or '(none)'}")
        if size > self.max_bytes:
            return Skipped(doc_id, f"larger than {self.max_bytes // (1024 * 1024)} MB")
        try:
            data = path.read_bytes()
            text = to_markdown(data, suffix)
        except UnreadableDocument as exc:
            log.warning("skipping unreadable file %s: %s", doc_id, exc)
            return Skipped(doc_id, str(exc))
        except OSError as exc:
            return Skipped(doc_id, f"could not be opened: {exc.strerror}")
        title = first_heading(text)
        if title is None and suffix in HTML_SUFFIXES:
            title = html_title(data.decode("utf-8", errors="replace"))
        relative = path.relative_to(self.root)
        return Document(
            id=doc_id,
            source=SOURCE,
            title=title or path.stem.replace("_", " ").replace("-", " "),
            url=path.as_uri(),
            text=text,
            updated_at=datetime.fromtimestamp(mtime, tz=UTC),
            version=hashlib.sha256(data).hexdigest()[:24],
            acl=self._acl_for(path),
            breadcrumbs=tuple(relative.parent.parts),
        )

    def _acl_for(self, path: Path) -> frozenset[str]:
        folder = path.parent
        while True:
            acl_file = folder / ACL_FILE
            if acl_file.is_file():
                principals = frozenset(
                    line.strip()
                    for line in acl_file.read_text(encoding="utf-8").splitlines()
                    if line.strip() and not line.lstrip().startswith("#")
                )
                # An empty .acl means nobody: fail closed rather than fall back to public.
                return principals
            if folder == self.root or self.root not in folder.parents:
                return DEFAULT_ACL
            folder = folder.parent
