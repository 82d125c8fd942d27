"""The `LLM` extension point: one contract run against every backend, the spec strings,
and the OpenAI-compatible backend's structured-output fallbacks and failure mapping
(against the fake OpenAI server of fake_openai.py on loopback; the real llama.cpp server is in
test_llm_server.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fake_openai import FakeOpenAI, serve_fake_openai

from hyperpilot.agent.llm import (
    LLM,
    ChatModelLLM,
    EmbeddedLLM,
    LLMError,
    LLMTimeout,
    LLMUnavailable,
    OpenAICompatLLM,
    ScriptedLLM,
    resolve_llm,
)

SCHEMA = {"type": "object", "properties": {"choice": {"enum": [0, 1, 2]}, "reason": {"type": "string"}},
          "required": ["choice", "reason"]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with serve_fake_openai() as server:
        yield server


@pytest.fixture
def fake_url(fake: FakeOpenAI) -> str:
    return fake.url


def _backends(fake_url: str) -> dict[str, LLM]:
    from langchain_openai import ChatOpenAI

    return {
        "scripted": ScriptedLLM(),
        "openai": OpenAICompatLLM("gpt-fake", base_url=fake_url),
        "openai-llama-cpp": OpenAICompatLLM("llama-cpp", base_url=fake_url),
        "langchain": ChatModelLLM(ChatOpenAI(model="gpt-fake", base_url=fake_url, api_key="none", max_retries=0)),
    }


@pytest.mark.parametrize("name", ["scripted", "openai", "openai-llama-cpp", "langchain"])
class TestLLMContract:
    """What every backend promises (the embedded one runs the same checks in test_llm_embedded.py)."""

    def test_plain_text(self, name: str, fake_url: str) -> None:
        llm = _backends(fake_url)[name]
        completion = llm.chat([{"role": "user", "content": "Say hello."}], max_tokens=16)
        assert isinstance(completion.text, str) and completion.text
        assert completion.seconds >= 0
        assert isinstance(llm.text("Say hello."), str)

    def test_structured_answer_is_json_of_the_schema(self, name: str, fake_url: str) -> None:
        llm = _backends(fake_url)[name]
        answer = json.loads(llm.chat([{"role": "user", "content": "Pick one."}], schema=SCHEMA).text)
        assert answer["choice"] in (0, 1, 2) and isinstance(answer["reason"], str)

    def test_rejects_bad_arguments(self, name: str, fake_url: str) -> None:
        llm = _backends(fake_url)[name]
        with pytest.raises(LLMError, match="at least one message"):
            llm.chat([])
        with pytest.raises(LLMError, match="timeout"):
            llm.chat([{"role": "user", "content": "x"}], timeout=0)

    def test_describes_itself(self, name: str, fake_url: str) -> None:
        llm = _backends(fake_url)[name]
        assert llm.backend and llm.model and isinstance(llm.free_proposals, bool)


def test_specs_resolve_to_backends() -> None:
    assert resolve_llm("none") is None and resolve_llm(None) is None
    assert isinstance(resolve_llm("scripted"), ScriptedLLM)
    llm = resolve_llm("http://127.0.0.1:8000/v1#qwen")
    assert isinstance(llm, OpenAICompatLLM) and llm.model == "qwen" and llm.base_url == "http://127.0.0.1:8000/v1"
    same = ScriptedLLM()
    assert resolve_llm(same) is same


@pytest.mark.parametrize("spec, message", [
    ("gpt4", "unknown --llm"), ("http://127.0.0.1:8000/v1", "names no model"), ("openai:", "names no model"),
])
def test_bad_specs_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(LLMError, match=message):
        resolve_llm(spec)


def test_openai_without_a_key_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("HYPERPILOT_API_KEY", raising=False)
    with pytest.raises(LLMUnavailable, match="OPENAI_API_KEY"):
        resolve_llm("openai:gpt-4o-mini")
    with pytest.raises(LLMUnavailable, match="OPENAI_API_KEY"):
        OpenAICompatLLM("gpt-4o-mini").chat([{"role": "user", "content": "x"}])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert isinstance(resolve_llm("openai:gpt-4o-mini"), OpenAICompatLLM)


def test_embedded_without_llama_cpp_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(LLMUnavailable, match="pip install"):
        resolve_llm("embedded")
    with pytest.raises(LLMUnavailable, match="pip install"):
        EmbeddedLLM().chat([{"role": "user", "content": "x"}])


def test_llama_cpp_server_modes_fall_back_and_are_remembered(fake: FakeOpenAI) -> None:
    llm = OpenAICompatLLM("llama-cpp", base_url=fake.url)
    fake.forget()
    json.loads(llm.chat([{"role": "user", "content": "x"}], schema=SCHEMA).text)
    assert [b["response_format"]["type"] for b in fake.bodies] == ["json_schema", "json_object"]
    assert llm.mode == "json_object"
    fake.forget()
    llm.chat([{"role": "user", "content": "x"}], schema=SCHEMA)
    assert len(fake.bodies) == 1


def test_forced_tool_call_is_the_last_resort(fake_url: str) -> None:
    llm = OpenAICompatLLM("tools-only", base_url=fake_url)
    completion = llm.chat([{"role": "user", "content": "x"}], schema=SCHEMA)
    assert json.loads(completion.text)["choice"] in (0, 1, 2)
    assert llm.mode == "tools" and completion.prompt_tokens == 11 and completion.completion_tokens == 7


@pytest.mark.parametrize("model, error, message", [
    ("rate-limited", LLMUnavailable, "rate-limiting"),
    ("down", LLMUnavailable, "rejected every request"),
    ("slow", LLMTimeout, "within"),
])
def test_endpoint_failures_become_typed_errors(fake_url: str, model: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        OpenAICompatLLM(model, base_url=fake_url).chat([{"role": "user", "content": "x"}], schema=SCHEMA, timeout=0.5)


def test_unreachable_endpoint_is_unavailable() -> None:
    llm = OpenAICompatLLM("m", base_url="http://127.0.0.1:9/v1")  # discard port: nothing listens
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        llm.chat([{"role": "user", "content": "x"}], timeout=2)


def test_langchain_timeout_and_failure(fake_url: str) -> None:
    from langchain_openai import ChatOpenAI

    slow = ChatModelLLM(ChatOpenAI(model="slow", base_url=fake_url, api_key="none", max_retries=0))
    with pytest.raises(LLMTimeout):
        slow.chat([{"role": "user", "content": "x"}], timeout=0.3)
    down = ChatModelLLM(ChatOpenAI(model="down", base_url=fake_url, api_key="none", max_retries=0))
    with pytest.raises(LLMUnavailable):
        down.chat([{"role": "user", "content": "x"}])


def test_scripted_model_plays_its_script_then_fits_the_schema() -> None:
    llm = ScriptedLLM(["first", RuntimeError("second"), lambda messages, schema: messages[-1]["content"].upper()])
    assert llm.text("a") == "first"
    with pytest.raises(RuntimeError):
        llm.text("b")
    assert llm.text("c") == "C"
    assert json.loads(llm.chat([{"role": "user", "content": "d"}], schema=SCHEMA).text)["choice"] == 0
    assert json.loads(llm.chat([{"role": "user", "content": "e"}], schema=SCHEMA).text)["choice"] == 1
    assert len(llm.requests) == 5


def test_scripted_delay_past_the_timeout_times_out() -> None:
    with pytest.raises(LLMTimeout):
        ScriptedLLM(delay=0.2).chat([{"role": "user", "content": "x"}], timeout=0.05)
