"""The files connector: a folder of Markdown, HTML, text, PDF and Office files.

Files are readable by everyone (`public`) unless a `.acl` file in their folder or an ancestor
folder lists principals, one per line; the nearest `.acl` wins. Incremental polls read only files
whose mtime or ctime moved past the last checkpoint (ctime catches copies that keep an old mtime).

The folder's writers are not trusted. Only regular files whose real path stays inside the root
are read: a symlink may point elsewhere inside the root, but one that leads out of it (to
`/proc/self/environ`, `/etc/passwd`), FIFOs, sockets and devices are skipped and reported, and
anything indexed from such a path before is removed. Rich formats are parsed in a child process
with size, memory and time limits (`connectors.isolation`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import Checkpoint, ConnectorError, Deleted, Document, PollItem, Skipped
from connectors.isolation import IsolatedParser
from connectors.limits import MB, ParseLimits
from connectors.parsing import (
    HTML_SUFFIXES,
    SUPPORTED_SUFFIXES,
    UnreadableDocument,
    first_heading,
    html_title,
)

log = logging.getLogger(__name__)

SOURCE = "files"
ACL_FILE = ".acl"
DEFAULT_ACL = frozenset({"public"})
MAX_ACL_BYTES = 64 * 1024
# File timestamps come from a coarse kernel clock (and network file systems round to seconds),
# so a file written just after a poll began can carry an earlier time. Files this close to the
# checkpoint are read again; the sync's version check keeps that from re-embedding them.
TIMESTAMP_SLACK_NS = 5 * 1_000_000_000


class UnsafeFile(Exception):
    """A path that must not be read: outside the root, or not a regular file."""


@dataclass(frozen=True)
class _Entry:
    """A name found in the folder, and the real file it stands for (None when refused)."""

    path: Path
    changed_ns: int
    target: Path | None
    refusal: str | None = None


class FilesConnector:
    """Yields one Document per readable file under `root`."""

    name = SOURCE
    listing_is_cheap = True

    def __init__(self, root: Path, limits: ParseLimits | None = None) -> None:
        self.root = root.resolve()
        self.limits = limits or ParseLimits()

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        started_ns = time.time_ns()
        since_ns = int(checkpoint.value) - TIMESTAMP_SLACK_NS if checkpoint is not None else None
        with IsolatedParser(self.limits) as parser:
            for entry in self._entries():
                if since_ns is not None and entry.changed_ns < since_ns:
                    continue
                doc_id = self.document_id(entry.path)
                if entry.target is None:
                    log.warning("refusing %s: %s", doc_id, entry.refusal)
                    yield Deleted(doc_id)  # whatever an earlier sync read there must go
                    yield Skipped(doc_id, str(entry.refusal))
                    continue
                yield self._read(entry.path, entry.target, parser)
        yield Checkpoint(SOURCE, str(started_ns))

    def list_ids(self) -> Iterator[str]:
        # Every name counts, refused ones included: their skip reports stay in `ragbot status`.
        for path in self._names():
            yield self.document_id(path)

    def document_id(self, path: Path) -> str:
        return f"{SOURCE}:{path.relative_to(self.root).as_posix()}"

    def _names(self) -> Iterator[Path]:
        if not self.root.is_dir():
            raise ConnectorError(f"FILES_PATH {self.root} is not a readable folder")
        # os.walk never descends into symlinked folders; symlinked files are judged one by one.
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=_log_walk_error):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if not filename.startswith("."):
                    yield Path(dirpath) / filename

    def _entries(self) -> Iterator[_Entry]:
        for path in self._names():
            entry = self._entry(path)
            if entry is not None:
                yield entry

    def _entry(self, path: Path) -> _Entry | None:
        try:
            own = path.lstat()
        except OSError:  # removed while we walked
            return None
        changed_ns = max(own.st_mtime_ns, own.st_ctime_ns)
        try:
            target, real = self._safe_target(path)
        except UnsafeFile as exc:
            return _Entry(path, changed_ns, None, str(exc))
        return _Entry(path, max(changed_ns, real.st_mtime_ns, real.st_ctime_ns), target)

    def _safe_target(self, path: Path) -> tuple[Path, os.stat_result]:
        """The real, regular file inside the root that `path` names, and its status; else
        UnsafeFile."""
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # dangling link, loop
            raise UnsafeFile("a broken or looping symlink") from exc
        if target != self.root and self.root not in target.parents:
            raise UnsafeFile("a symlink to a file outside FILES_PATH")
        try:
            status = target.stat()
        except OSError as exc:
            raise UnsafeFile(f"could not be examined: {exc.strerror}") from exc
        if not stat.S_ISREG(status.st_mode):
            raise UnsafeFile(f"not a regular file ({_kind(status.st_mode)})")
        return target, status

    def _read(self, path: Path, target: Path, parser: IsolatedParser) -> Document | Skipped:
        doc_id = self.document_id(path)
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            return Skipped(doc_id, f"unsupported file type {suffix or '(none)'}")
        try:
            data, mtime = read_regular_file(target, self.limits.max_bytes)
            text = parser.to_markdown(data, suffix)
        except (UnreadableDocument, UnsafeFile) as exc:
            log.warning("skipping %s: %s", doc_id, exc)
            return Skipped(doc_id, str(exc))
        except OSError as exc:
            return Skipped(doc_id, f"could not be opened: {exc.strerror or exc}")
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
            places=folder_places(relative.parent.parts),
        )

    def _acl_for(self, path: Path) -> frozenset[str]:
        folder = path.parent
        while True:
            acl_file = folder / ACL_FILE
            if os.path.lexists(acl_file):
                try:
                    data, _ = read_regular_file(self._safe_target(acl_file)[0], MAX_ACL_BYTES)
                    lines = data.decode("utf-8").splitlines()
                except (UnsafeFile, UnreadableDocument, OSError, UnicodeDecodeError) as exc:
                    log.warning(
                        "unreadable %s: %s; its folder is readable by nobody", acl_file, exc
                    )
                    return frozenset()  # fail closed
                # An empty .acl means nobody: fail closed rather than fall back to public.
                return frozenset(
                    line.strip()
                    for line in lines
                    if line.strip() and not line.lstrip().startswith("#")
                )
            if folder == self.root or self.root not in folder.parents:
                return DEFAULT_ACL
            folder = folder.parent


def read_regular_file(path: Path, max_bytes: int) -> tuple[bytes, float]:
    """The file's bytes (at most `max_bytes`) and mtime, read only if it is a regular file.

    Opened without blocking and checked after opening, so a file swapped for a FIFO or a
    device between the check and the read is refused instead of hanging or streaming forever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"not a regular file ({_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise UnreadableDocument(f"larger than {max_bytes // MB} MB")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while we read it
        raise UnreadableDocument(f"larger than {max_bytes // MB} MB")
    return data, info.st_mtime


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a file"


def _log_walk_error(exc: OSError) -> None:
    log.warning("could not list %s: %s", exc.filename, exc.strerror)


def folder_places(parts: tuple[str, ...]) -> tuple[str, ...]:
    """A file's folders as places, outermost first: ("eng/", "eng/runbooks/")."""
    return tuple("".join(f"{part}/" for part in parts[: depth + 1]) for depth in range(len(parts)))
