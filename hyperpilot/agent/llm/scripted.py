"""`ScriptedLLM`: a deterministic model for tests and offline demos (`--llm scripted`).

It answers from a script — strings, exceptions to raise, or callables that see the
messages and the schema — and, once the script is spent (or without one), with the
smallest JSON that fits the schema (like pydantic-ai's `TestModel`): the i-th call picks
the i-th value of each enum, so consecutive answers differ."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from hyperpilot.agent.llm.base import LLM, Completion, LLMTimeout, Message

Step = str | BaseException | Callable[[list[Message], dict[str, Any] | None], str]


class ScriptedLLM(LLM):
    backend = "scripted"

    def __init__(self, script: Sequence[Step] = (), *, model: str = "scripted", free_proposals: bool = False,
                 delay: float = 0.0) -> None:
        self.script = list(script)
        self.model = model
        self.free_proposals = free_proposals
        self.delay = delay
        self.requests: list[tuple[list[Message], dict[str, Any] | None]] = []

    def _chat(self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int,
              timeout: float) -> Completion:
        index = len(self.requests)
        self.requests.append(([dict(m) for m in messages], schema))
        if self.delay:
            time.sleep(min(self.delay, timeout))
            if self.delay > timeout:
                raise LLMTimeout(f"scripted model took longer than {timeout:g} s")
        step: Step | None = self.script[index] if index < len(self.script) else None
        if isinstance(step, BaseException):
            raise step
        if step is None:
            text = example_for(schema, index) if schema is not None else "A scripted answer from the deterministic test model."
        else:
            text = step(messages, schema) if callable(step) else step
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return Completion(text, prompt_tokens, len(text.split()))


def example_for(schema: dict[str, Any], i: int = 0) -> str:
    """A JSON answer that fits `schema`; `i` rotates through enum values."""
    return json.dumps(_example(schema, schema.get("$defs", {}), i))


def _example(node: dict[str, Any], defs: dict[str, Any], i: int) -> Any:
    if "$ref" in node:
        return _example(defs[node["$ref"].split("/")[-1]], defs, i)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][i % len(node["enum"])]
    for key in ("anyOf", "oneOf"):
        if key in node:
            options = [o for o in node[key] if o.get("type") != "null"] or node[key]
            return _example(options[i % len(options)], defs, i)
    kind = node.get("type")
    if kind == "object":
        return {name: _example(sub, defs, i) for name, sub in node.get("properties", {}).items()}
    if kind == "array":
        n = max(1, int(node.get("minItems", 1)))
        return [_example(node.get("items", {}), defs, i + j) for j in range(n)]
    if kind == "integer":
        return int(node.get("minimum", 0))
    if kind == "number":
        return float(node.get("minimum", 0.0))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "scripted answer"
