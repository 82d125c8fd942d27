"""The `LLM` extension point: one chat interface shaped like OpenAI chat completions.

Lifecycle of a backend:
- `__init__` only stores settings: no import of a heavy runtime, no network, no model load.
- `chat(messages, schema=..., max_tokens=..., timeout=...)` any number of times. The first
  call may load the model or open the client. With a `schema` (a JSON schema dict) the
  backend constrains or asks for JSON that matches it; the *caller* still validates the
  answer (`agent.planner`), because no backend is trusted.
- `text(prompt)` is the same call without a schema and with one user message: a plain
  `str -> str` callable, e.g. for a code writer (`CodeProposer(write_code=llm.text)`).
- `choose(messages, n)` picks one of `n` lettered options (A, B, …) that the messages
  present, and nothing else: by default one `chat` call whose schema allows only the
  letters; a backend that can read its own next-token log-probabilities (the embedded one)
  scores the letters in one forward pass instead, with no generation at all.

Errors a backend raises (all `LLMError`): `LLMUnavailable` (not installed, endpoint down,
rate-limited, server error) and `LLMTimeout`. What the model got *wrong* (bad JSON, out of
range) is not an error here; the planner feeds it back to the model with a retry budget.
"""

from __future__ import annotations

import json
import os
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from hyperpilot.errors import LLMError

Message = dict[str, str]
"""One chat message: `{"role": "system" | "user" | "assistant", "content": "..."}`."""


KEY_VARIABLES = ("OPENAI_API_KEY", "HYPERPILOT_API_KEY")
_SECRETS: set[str] = set()
_TOKEN = re.compile(r"(?i)\b(bearer\s+|sk-)[A-Za-z0-9._~+/=-]{6,}")


def remember_secret(value: str | None) -> None:
    """Have `redact` hide `value` (a key a backend sends) from now on."""
    if value and len(value.strip()) >= 4:
        _SECRETS.add(value.strip())


def redact(text: str) -> str:
    """`text` with every known key (remembered ones, `$OPENAI_API_KEY`, `$HYPERPILOT_API_KEY`)
    and anything shaped like one (`sk-…`, `Bearer …`) replaced by `***`."""
    secrets = set(_SECRETS)
    for name in KEY_VARIABLES:
        value = (os.environ.get(name) or "").strip()
        if len(value) >= 4:
            secrets.add(value)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _TOKEN.sub(lambda m: m.group(1) + "***", text)


class LLMUnavailable(LLMError):
    """The backend cannot answer at all: missing install, endpoint down, rate limit."""


class LLMTimeout(LLMError):
    """The backend did not answer within the call's timeout."""


class LLMBadAnswer(LLMError):
    """The backend answered, but not in the form asked (e.g. no option letter)."""


@dataclass(frozen=True)
class Completion:
    """One answer and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Choice:
    """One pick among lettered options: the index (0 is A), the options' scores when the
    backend can read them (log-probabilities, else empty), and what the call cost."""

    index: int
    scores: tuple[float, ...] = ()
    prompt_tokens: int = 0
    seconds: float = 0.0


class LLM(ABC):
    """Base class of every backend.

    `backend` names the kind (embedded, openai, scripted, langchain); `model` the model.
    `free_proposals` says whether the planner may ask this model to invent configurations
    inside the search space (a capable model) or only to *pick* among offered values and
    candidates (a small, grammar-constrained model)."""

    backend: ClassVar[str] = "llm"
    model: str = ""
    free_proposals: bool = False

    def chat(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
        timeout: float = 30.0,
    ) -> Completion:
        """Answer `messages`; with `schema`, the answer should be JSON matching it."""
        if not messages:
            raise LLMError("chat() needs at least one message")
        if timeout <= 0:
            raise LLMError(f"timeout must be > 0 seconds, got {timeout}")
        start = time.perf_counter()
        try:
            completion = self._chat(messages, schema, max_tokens, timeout)
        except LLMError as e:  # no key in a message that is logged and stored in the study
            clean, cause = redact(str(e)), e.__cause__
            if clean != str(e) or (cause is not None and redact(str(cause)) != str(cause)):
                e.args = (clean, *e.args[1:])
                raise e from None  # nor in a chained client error, which a traceback would show
            raise
        if completion.seconds:
            return completion
        return Completion(completion.text, completion.prompt_tokens, completion.completion_tokens,
                          time.perf_counter() - start)

    def text(self, prompt: str, *, max_tokens: int = 1024, timeout: float = 120.0) -> str:
        """Plain text for one user prompt (no schema): a `str -> str` callable."""
        return self.chat([{"role": "user", "content": prompt}], max_tokens=max_tokens, timeout=timeout).text

    def choose(self, messages: list[Message], n: int, *, timeout: float = 30.0) -> Choice:
        """Which of `n` options, lettered A, B, … in `messages`, the model prefers.

        This default asks `chat` for `{"choice": LETTER}` under a schema that allows only the
        `n` letters; an answer that is not one of them raises `LLMBadAnswer` (the caller falls back)."""
        if not 2 <= n <= len(LETTERS):
            raise LLMError(f"choose() takes 2 to {len(LETTERS)} options, got {n}")
        schema = {"type": "object", "properties": {"choice": {"enum": list(LETTERS[:n])}}, "required": ["choice"]}
        completion = self.chat(messages, schema=schema, max_tokens=32, timeout=timeout)
        try:
            letter = json.loads(completion.text)["choice"]
            index = LETTERS[:n].index(letter)
        except (ValueError, KeyError, TypeError) as e:
            raise LLMBadAnswer(f"{self.describe()} answered {completion.text[:60]!r}, not one of the letters "
                               f"{LETTERS[:n]}") from e
        return Choice(index, (), completion.prompt_tokens, completion.seconds)

    def describe(self) -> str:
        return f"{self.backend}:{self.model}"

    @abstractmethod
    def _chat(self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int,
              timeout: float) -> Completion:
        """Backend-specific call; raise `LLMUnavailable` / `LLMTimeout`, never a raw client error."""
