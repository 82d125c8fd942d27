"""LLM backends behind one interface (`LLM`, see `base`), and `resolve_llm` for specs:

    embedded                 SmolLM2-135M-Instruct in this process (the default; no key, no network)
    embedded:PATH.gguf       another GGUF file in this process
    none                     no LLM: pure Bayesian optimisation
    scripted                 the deterministic test model
    openai:MODEL             OpenAI (key from OPENAI_API_KEY, else HYPERPILOT_API_KEY)
    http://HOST:PORT/v1#MODEL   any OpenAI-compatible server (vLLM, Ollama, llama.cpp server);
                             key from HYPERPILOT_API_KEY, never OPENAI_API_KEY

`openai:` and `http(s)://` specs may end with `?key_env=NAME` (or `resolve_llm(spec,
key_env=NAME)`, the CLI's `--llm-key-env NAME`): the key is then read from `$NAME` instead.
A key is never sent over plain http to a host other than this machine (see `openai_compat`).

A LangChain chat model object can be passed wrapped in `ChatModelLLM`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from hyperpilot.agent.llm.base import LLM, Choice, Completion, LLMBadAnswer, LLMTimeout, LLMUnavailable, Message
from hyperpilot.agent.llm.chat_model import ChatModelLLM
from hyperpilot.agent.llm.embedded import EmbeddedLLM, check_runtime, smollm2_path
from hyperpilot.agent.llm.openai_compat import OpenAICompatLLM, check_key_env
from hyperpilot.agent.llm.scripted import ScriptedLLM
from hyperpilot.errors import LLMError

__all__ = [
    "LLM", "ChatModelLLM", "Choice", "Completion", "EmbeddedLLM", "LLMBadAnswer", "LLMError", "LLMTimeout",
    "LLMUnavailable", "Message",
    "OpenAICompatLLM", "ScriptedLLM", "register_backend", "resolve_llm", "smollm2_path",
]

DEFAULT_SPEC = "embedded"
NONE_SPECS = ("none", "off", "bo")
KEY_ENV_SUFFIX = "?key_env="
_KEYED = ("openai", "http", "https")  # the prefixes whose spec may name a key variable


def _embedded(rest: str) -> LLM:
    check_runtime()
    if not rest:
        smollm2_path()
    return EmbeddedLLM(model_path=rest or None)


def _http(spec: str) -> LLM:
    url, _, model = spec.partition("#")
    if not model:
        raise LLMError(f"--llm {spec!r} names no model; append it after '#', e.g. {url}#my-model")
    return OpenAICompatLLM(model=model, base_url=url)


def _openai(model: str) -> LLM:
    if not model:
        raise LLMError("--llm openai: names no model; e.g. openai:gpt-4o-mini")
    return OpenAICompatLLM(model=model)  # resolve_llm checks the key


_FACTORIES: dict[str, Callable[[str], LLM]] = {
    "embedded": _embedded,
    "scripted": lambda rest: ScriptedLLM(),
    "openai": _openai,
    "http": lambda rest: _http("http:" + rest),
    "https": lambda rest: _http("https:" + rest),
}


def register_backend(prefix: str, factory: Callable[[str], LLM]) -> None:
    """Make `--llm PREFIX:REST` build `factory(REST)`."""
    _FACTORIES[prefix] = factory


def resolve_llm(spec: LLM | str | None, *, key_env: str | None = None) -> LLM | None:
    """An `LLM` for a spec string (see the module docstring); `None` means no LLM.

    `key_env` names the environment variable that holds the key of an `openai:` or
    `http(s)://` backend (other backends ignore it). A missing install or key, or a key that
    would go over plain http to another machine, raises `LLMError` with what to do."""
    if isinstance(spec, LLM):
        return spec
    if spec is None:
        return None
    text = spec.strip()
    if text.lower() in NONE_SPECS:
        return None
    prefix, _, rest = text.partition(":")
    factory = _FACTORIES.get(prefix.lower())
    if factory is None:
        raise LLMError(
            f"unknown --llm {spec!r}; use embedded, none, scripted, openai:MODEL or http://HOST:PORT/v1#MODEL"
        )
    if prefix.lower() in _KEYED and KEY_ENV_SUFFIX in rest:
        rest, _, key_env = rest.rpartition(KEY_ENV_SUFFIX)
    llm = factory(rest)
    if isinstance(llm, OpenAICompatLLM):
        if key_env:
            llm.api_key_env = check_key_env(key_env)
        llm.key()  # fail now, before any study, on a missing key or one that would go out in the clear
    return llm


def default_spec() -> str:
    """`$HYPERPILOT_LLM`, else the embedded model."""
    return os.environ.get("HYPERPILOT_LLM") or DEFAULT_SPEC
