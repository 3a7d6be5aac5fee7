"""The ways a question can be searched: both sides fused (what answers use) or one side alone
(for measuring each). Kept apart from retrieval itself so a command line can list them without
loading the models."""

from __future__ import annotations

from typing import Literal

Mode = Literal["hybrid", "dense", "sparse"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "sparse")
