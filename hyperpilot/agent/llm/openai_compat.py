"""`OpenAICompatLLM`: any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp
server) through the `openai` client.

Structured output, best first, remembered per backend once one works:
1. `json_schema` response format (OpenAI, vLLM, Ollama);
2. `json_object` plus the schema (llama.cpp's server: its `json_schema` fails with HTTP 500);
3. a forced tool call whose parameters are the schema.
A mode the server rejects (HTTP 400/404/422/500) is skipped; a server that is down, slow or
rate-limits raises `LLMUnavailable` / `LLMTimeout` and the planner falls back to BO.
The key comes from `api_key`, `HYPERPILOT_API_KEY` or `OPENAI_API_KEY`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from hyperpilot.agent.llm.base import LLM, Completion, LLMTimeout, LLMUnavailable, Message

Mode = Literal["json_schema", "json_object", "tools"]
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "tools")
_TOOL = "answer"


class OpenAICompatLLM(LLM):
    backend = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 mode: Mode | None = None, free_proposals: bool = True, temperature: float = 0.3,
                 seed: int | None = 0) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.mode = mode
        self.free_proposals = free_proposals
        self.temperature = temperature
        self.seed = seed
        self._client: Any = None

    def describe(self) -> str:
        return f"{self.base_url or 'openai'}#{self.model}"

    def client(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise LLMUnavailable("the OpenAI-compatible backend needs `pip install openai`") from None
            key = self.api_key or os.environ.get("HYPERPILOT_API_KEY") or os.environ.get("OPENAI_API_KEY")
            if not key and self.base_url is None:
                raise LLMUnavailable("--llm openai:MODEL needs a key: set OPENAI_API_KEY or HYPERPILOT_API_KEY")
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key or "none", max_retries=0)
        return self._client

    def _chat(self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int,
              timeout: float) -> Completion:
        import openai

        modes: tuple[Mode | None, ...] = (None,)
        if schema is not None:
            modes = (self.mode,) if self.mode else MODES
        last: Exception | None = None
        for mode in modes:
            try:
                response = self.client().chat.completions.create(
                    model=self.model, messages=messages, max_tokens=max_tokens, temperature=self.temperature,
                    timeout=timeout, **({"seed": self.seed} if self.seed is not None else {}),
                    **_structured(mode, schema),
                )
            except openai.APITimeoutError as e:
                raise LLMTimeout(f"{self.describe()} did not answer within {timeout:g} s") from e
            except openai.RateLimitError as e:
                raise LLMUnavailable(f"{self.describe()} is rate-limiting: {_short(e)}") from e
            except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                raise LLMUnavailable(f"{self.describe()} refused the key: {_short(e)}") from e
            except openai.APIConnectionError as e:
                raise LLMUnavailable(f"cannot reach {self.describe()}: {_short(e)}") from e
            except openai.APIStatusError as e:
                last = e
                continue  # this structured-output mode is not supported here; try the next one
            if mode is not None:
                self.mode = mode
            return _completion(response, mode)
        raise LLMUnavailable(f"{self.describe()} rejected every request: {_short(last)}") from last


def _structured(mode: Mode | None, schema: dict[str, Any] | None) -> dict[str, Any]:
    if mode is None or schema is None:
        return {}
    if mode == "json_schema":
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": _TOOL, "schema": schema, "strict": False}}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema}}
    tool = {"type": "function", "function": {"name": _TOOL, "description": "Give the answer.", "parameters": schema}}
    return {"tools": [tool], "tool_choice": {"type": "function", "function": {"name": _TOOL}}}


def _completion(response: Any, mode: Mode | None) -> Completion:
    message = response.choices[0].message
    if mode == "tools" and message.tool_calls:
        text = message.tool_calls[0].function.arguments
        text = text if isinstance(text, str) else json.dumps(text)
    else:
        text = message.content or ""
    usage = response.usage
    return Completion(text, int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0))


def _short(e: Exception | None) -> str:
    return str(e).splitlines()[0][:200] if e is not None else "no request was made"
