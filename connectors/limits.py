"""What one untrusted document may cost: plain numbers, so settings can name them without
loading any format library."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """What one untrusted document may cost before it is skipped (and reported) instead.

    Bytes and archive sizes are checked before anything is inflated; seconds and memory bound
    the parser process (see `connectors.isolation`).
    """

    max_bytes: int = 20 * MB  # read from the source per document
    max_inflated_bytes: int = 100 * MB  # an archive's declared content, all entries together
    max_entries: int = 10_000  # entries in one archive
    seconds: float = 30.0  # wall-clock budget to turn one document into text
    # Address space of the process that parses it: about 200 MB is the interpreter and the
    # format libraries, the rest is the document's.
    memory_bytes: int = 600 * MB
