"""The chat model: any OpenAI-compatible chat-completions API, with bounded time and retries."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import openai

log = logging.getLogger(__name__)

# Context windows of common models; anything else needs RAGBOT_CONTEXT_TOKENS or gets 8k.
_CONTEXT_WINDOWS = (
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-4", 8_192),
)
DEFAULT_CONTEXT_TOKENS = 8_192


def context_window(model: str, override: int | None = None) -> int:
    """The model's context window in tokens: the override, a known model's, or a safe 8k."""
    if override:
        return override
    name = model.lower().rsplit("/", 1)[-1]
    for prefix, tokens in _CONTEXT_WINDOWS:
        if name.startswith(prefix):
            return tokens
    return DEFAULT_CONTEXT_TOKENS


class LLMError(Exception):
    """The chat model could not answer; the message is fit to show a user."""


def make_client(
    api_key: str, base_url: str | None, timeout: float, max_retries: int = 1
) -> openai.OpenAI:
    """An OpenAI client; it retries 408/409/429/5xx with backoff and honours Retry-After.

    One retry by default: an answer must finish within the answer task's time limit.
    """
    return openai.OpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


class ChatModel:
    """Sends messages, returns the reply text (whole, or streamed in pieces)."""

    def __init__(self, client: openai.OpenAI, model: str, max_tokens: int) -> None:
        self._client = client
        self.model = model
        self.max_tokens = max_tokens

    def complete(self, messages: Sequence[dict[str, str]]) -> str:
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=list(messages),  # type: ignore[arg-type]
                max_tokens=self.max_tokens,
                temperature=0,
            )
        except openai.APIError as exc:
            raise _translate(exc) from exc
        if not response.choices:
            raise LLMError("the language model returned no answer")
        return response.choices[0].message.content or ""

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]:
        """Yields the reply in pieces as the server sends them."""
        try:
            events = self._client.chat.completions.create(
                model=self.model,
                messages=list(messages),  # type: ignore[arg-type]
                max_tokens=self.max_tokens,
                temperature=0,
                stream=True,
            )
            for event in events:
                choices = getattr(event, "choices", None)
                if choices and choices[0].delta.content:
                    yield str(choices[0].delta.content)
        except openai.APIError as exc:
            raise _translate(exc) from exc


def _translate(exc: openai.APIError) -> LLMError:
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("the language model did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError("the language model could not be reached")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return LLMError("the language model rejected our API key")
    if isinstance(exc, openai.RateLimitError):
        return LLMError("the language model is busy (rate limited)")
    if isinstance(exc, openai.APIStatusError):
        return LLMError(f"the language model failed (HTTP {exc.status_code})")
    return LLMError("the language model failed")
