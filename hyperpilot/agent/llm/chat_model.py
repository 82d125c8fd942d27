"""`ChatModelLLM`: any LangChain chat model object (`ChatOpenAI`, `ChatAnthropic`, …) as a
hyperpilot `LLM` — for users who already configure their models through LangChain.

Structured answers use a forced tool call whose parameters are the schema (the one
structured-output method every tool-calling chat model supports, llama.cpp's server
included). The call runs in a worker thread so the timeout holds for any model."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from hyperpilot.agent.llm.base import LLM, Completion, LLMTimeout, LLMUnavailable, Message

_TOOL = "answer"


class ChatModelLLM(LLM):
    backend = "langchain"

    def __init__(self, chat_model: Any, *, free_proposals: bool = True) -> None:
        self.chat_model = chat_model
        self.model = str(getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None)
                         or type(chat_model).__name__)
        self.free_proposals = free_proposals
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hyperpilot-llm")

    def _chat(self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int,
              timeout: float) -> Completion:
        model = self.chat_model
        if schema is not None:
            tool = {"type": "function", "function": {"name": _TOOL, "description": "Give the answer.", "parameters": schema}}
            model = model.bind_tools([tool], tool_choice=_TOOL)
        future = self._pool.submit(model.invoke, [(m["role"], m["content"]) for m in messages])
        try:
            reply = future.result(timeout=timeout)
        except FutureTimeout as e:
            raise LLMTimeout(f"{self.model} did not answer within {timeout:g} s") from e
        except Exception as e:  # noqa: BLE001 - any provider's client error means "unavailable"
            raise LLMUnavailable(f"{self.model} failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from e
        if schema is not None and getattr(reply, "tool_calls", None):
            text = json.dumps(reply.tool_calls[0]["args"])
        else:
            text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        usage = getattr(reply, "usage_metadata", None) or {}
        return Completion(text, int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))
