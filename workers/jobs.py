"""The contract between the front doors and the workers, in one place: task names, the queue
each runs on, and the ids of the feedback buttons that workers post and front doors receive.

An answer job's arguments are `(platform, payload)`: the platform's name in the delivery
registry (workers/delivery/platforms.py) and its question as `to_payload()` gives it.
"""

from __future__ import annotations

ANSWER = "ragbot.answer"
SYNC_SOURCE = "ragbot.sync_source"
SYNC_ALL = "ragbot.sync_all"
ADMIN_STATUS = "ragbot.admin_status"
STATUS = "ragbot.status"
ASK = "ragbot.ask"
ADMIN_GAPS = "ragbot.admin_gaps"
GAPS_DIGEST = "ragbot.gaps_digest"
EMBED = "ragbot.embed"

ANSWER_QUEUE = "answer"
INDEX_QUEUE = "index"
# Batches of passages from fanned-out syncs; only embedding workers listen here.
EMBED_QUEUE = "embed"
# Everything that reads or writes the index in bulk runs on the index queue; the rest answers.
INDEX_TASKS = (SYNC_SOURCE, SYNC_ALL, ADMIN_STATUS, STATUS)

FEEDBACK_UP = "feedback_up"
FEEDBACK_DOWN = "feedback_down"
