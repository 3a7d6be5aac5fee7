"""Where admins' curation lives in the shared store: each conversation's scope (its places) and
the company's document preferences. The front doors write them (`bot/admin.py`); an answer
reads both in one round trip (`load_curation`).
"""

from __future__ import annotations

import json

from workers.kv import KeyValue
from workers.rag.curation import ACTIONS, Curation, DocumentPreferences

PREFERENCES_KEY = "document_preferences"


def scope_key(conversation: str) -> str:
    """The places a conversation answers from (absent: everything)."""
    return f"knowledge_scope:{conversation}"


def encode_places(places: frozenset[str]) -> str:
    return json.dumps(sorted(places))


def decode_places(raw: str | None) -> frozenset[str]:
    try:
        value = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        value = []
    return frozenset(str(place) for place in value) if isinstance(value, list) else frozenset()


def encode_preferences(preferences: DocumentPreferences) -> str:
    return json.dumps(dict(sorted(preferences.actions.items())))


def decode_preferences(raw: str | None) -> DocumentPreferences:
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        value = {}
    if not isinstance(value, dict):
        return DocumentPreferences()
    return DocumentPreferences(
        {str(url): str(action) for url, action in value.items() if action in ACTIONS}
    )


def load_curation(kv: KeyValue, conversation: str | None) -> Curation:
    """The conversation's places (none given: everything) with the document preferences.

    Raises `StoreUnavailable`: an answer must not quietly use documents admins hid."""
    if conversation is None:
        return decode_preferences(kv.get(PREFERENCES_KEY)).with_places(())
    places, preferences = kv.get_many([scope_key(conversation), PREFERENCES_KEY])
    return decode_preferences(preferences).with_places(decode_places(places))
