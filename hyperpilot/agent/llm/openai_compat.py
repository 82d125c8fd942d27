"""`OpenAICompatLLM`: any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp
server) through the `openai` client.

Structured output, best first, remembered per backend once one works:
1. `json_schema` response format (OpenAI, vLLM, Ollama);
2. `json_object` plus the schema (llama.cpp's server: its `json_schema` fails with HTTP 500);
3. a forced tool call whose parameters are the schema.
A mode the server rejects (HTTP 400/404/422/500) is skipped; a server that is down, slow or
rate-limits raises `LLMUnavailable` / `LLMTimeout` and the planner falls back to BO.

Keys go only to the host they belong to (`key()`): `api_key`, else the variable named by
`api_key_env`, else `OPENAI_API_KEY` (or `HYPERPILOT_API_KEY`) for OpenAI's own API and
`HYPERPILOT_API_KEY` for any other base URL — never `OPENAI_API_KEY`. A key never goes over
plain http to a host that is not this machine, and is redacted from every error message.
Every request sets the Authorization header itself, so the `openai` client's own environment
(`OPENAI_BASE_URL`, `OPENAI_CUSTOM_HEADERS`, `OPENAI_ORG_ID`, …) cannot redirect or add to it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from hyperpilot.agent.llm.base import LLM, Completion, LLMTimeout, LLMUnavailable, Message, redact, remember_secret
from hyperpilot.errors import LLMError

Mode = Literal["json_schema", "json_object", "tools"]
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "tools")
_TOOL = "answer"
OPENAI_URL = "https://api.openai.com/v1"
OPENAI_HOST = "api.openai.com"
KEY_ENV = "HYPERPILOT_API_KEY"


class OpenAICompatLLM(LLM):
    backend = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, mode: Mode | None = None, free_proposals: bool = True,
                 temperature: float = 0.3, seed: int | None = 0) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.api_key_env = check_key_env(api_key_env)
        self.mode = mode
        self.free_proposals = free_proposals
        self.temperature = temperature
        self.seed = seed
        self._client: Any = None
        self._headers: dict[str, Any] = {}
        if api_key:  # an explicit key is refused here already, before anything else happens
            remember_secret(api_key)
            self._check_transport("api_key")

    @property
    def url(self) -> str:
        """The base URL requests go to: `base_url`, or OpenAI's API (never `$OPENAI_BASE_URL`)."""
        return self.base_url or OPENAI_URL

    @property
    def is_openai(self) -> bool:
        """Whether the requests go to OpenAI's own API (the only host `OPENAI_API_KEY` goes to)."""
        parts = urlsplit(self.url)
        return parts.scheme == "https" and (parts.hostname or "").lower() == OPENAI_HOST

    def describe(self) -> str:
        return f"{_public_url(self.base_url) if self.base_url else 'openai'}#{self.model}"

    def key(self) -> str | None:
        """The key sent to `url`, or None (a local server needs none).

        Raises `LLMUnavailable` when a needed key is not set, and `LLMError` when the key would
        go over plain http to a host that is not this machine."""
        key: str | None
        if self.api_key:
            key, source = self.api_key, "api_key"
        elif self.api_key_env:
            key, source = os.environ.get(self.api_key_env), self.api_key_env
            if not key:
                raise LLMUnavailable(f"--llm-key-env {self.api_key_env}: the environment variable "
                                     f"{self.api_key_env} is not set (or empty); export the key for {self.describe()} in it")
        elif self.is_openai:
            source = "OPENAI_API_KEY" if os.environ.get("OPENAI_API_KEY") else KEY_ENV
            key = os.environ.get(source)
            if not key:
                raise LLMUnavailable(f"--llm openai:{self.model} needs a key: set OPENAI_API_KEY (or {KEY_ENV}, "
                                     "or name another variable with --llm-key-env)")
        else:  # any other server: never OPENAI_API_KEY, which belongs to OpenAI
            key, source = os.environ.get(KEY_ENV) or None, KEY_ENV
        if key:
            remember_secret(key)
            self._check_transport(source)
        return key

    def _check_transport(self, source: str) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
            host = parts.hostname or self.url
            raise LLMError(
                f"refusing to send the API key (from {source}) over plain {parts.scheme or 'http'} to {host}, "
                f"which is not this machine: use https://, reach the server through 127.0.0.1 (e.g. an SSH tunnel), "
                f"or send no key{'' if source == 'api_key' else f' (unset {source})'}"
            )

    def client(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise LLMUnavailable("the OpenAI-compatible backend needs `pip install openai`") from None
            key = self.key()
            parts = urlsplit(self.url)
            if parts.password:
                remember_secret(parts.password)
                self._check_transport("the URL")
            # the Authorization header of every request is ours alone: the key for this host, or none
            headers: dict[str, Any] = {"Authorization": f"Bearer {key}" if key else openai.Omit()}
            if not self.is_openai:  # OpenAI's organisation, project and custom headers stay with OpenAI
                for name in ("OpenAI-Organization", "OpenAI-Project", *_env_header_names()):
                    headers.setdefault(name, openai.Omit())
            self._headers = headers
            self._client = openai.OpenAI(base_url=self.url, api_key=key or "none", max_retries=0)
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
                    timeout=timeout, extra_headers=self._headers, **({"seed": self.seed} if self.seed is not None else {}),
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
            except openai.OpenAIError as e:
                raise LLMUnavailable(f"{self.describe()} failed: {type(e).__name__}: {_short(e)}") from e
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
    return redact(str(e).splitlines()[0] if str(e) else type(e).__name__)[:200] if e is not None else "no request was made"


def check_key_env(name: str | None) -> str | None:
    """`name` if it can name an environment variable (`--llm-key-env`), else `LLMError`."""
    if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
        raise LLMError("--llm-key-env takes the name of an environment variable (letters, digits and '_', "
                       "e.g. VLLM_API_KEY), not the key itself")  # the value is not echoed: it may be a key
    return name


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (checked without any DNS lookup)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified  # 0.0.0.0 connects to this machine


def _public_url(url: str) -> str:
    """`url` without user, password, query or fragment: what may appear in messages and studies."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return urlunsplit((parts.scheme, host + (f":{port}" if port else ""), parts.path, "", ""))


def _env_header_names() -> list[str]:
    """Header names the `openai` client reads from `$OPENAI_CUSTOM_HEADERS` ("Name: value" lines)."""
    text = os.environ.get("OPENAI_CUSTOM_HEADERS") or ""
    return [line.split(":", 1)[0].strip() for line in text.splitlines() if ":" in line and line.split(":", 1)[0].strip()]
