"""Token counting with the chat model's own tokenizer, bundled offline by `bpe-openai`.

Unknown model names (local or third-party models) fall back to o200k_base, the encoding of
current OpenAI models: close enough to keep budgets safe, and never a download.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import bpe_openai

FALLBACK_ENCODING = "o200k_base"


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str: ...


class BpeTokenCounter:
    """Counts tokens exactly as the model's tokenizer does."""

    def __init__(self, model: str) -> None:
        try:
            self._encoding = bpe_openai.encoding_for_model(model)
        except bpe_openai.UnsupportedModelError:
            self._encoding = bpe_openai.get_encoding(FALLBACK_ENCODING)
        self.encoding_name: str = self._encoding.name

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of `text` within `max_tokens`, cut on a token boundary."""
        tokens = self._encoding.encode_ordinary(text)
        if len(tokens) <= max_tokens:
            return text
        return str(self._encoding.decode(tokens[: max(max_tokens, 0)], errors="ignore"))


@lru_cache(maxsize=8)
def counter_for_model(model: str) -> BpeTokenCounter:
    """A shared counter per model; loading an encoding takes ~0.1 s."""
    return BpeTokenCounter(model)
