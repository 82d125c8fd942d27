"""A real OpenAI-compatible server: llama.cpp's (`python -m llama_cpp.server`, serving the
embedded SmolLM2 GGUF on 127.0.0.1), reached through the `openai` client backend and a
LangChain `ChatOpenAI` — the structured-output fallbacks against the real thing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("uvicorn", reason="the llama-cpp-python[server] extra is not installed")
pytest.importorskip("sse_starlette", reason="the llama-cpp-python[server] extra is not installed")

from hyperpilot import Assistant, Task, studies  # noqa: E402
from hyperpilot.agent.llm import ChatModelLLM, OpenAICompatLLM  # noqa: E402
from hyperpilot.agent.planner import Planner, Proposal  # noqa: E402
from hyperpilot.report import accounting  # noqa: E402
from hyperpilot.testing.llama_server import llama_server  # noqa: E402

SCHEMA = {"type": "object", "properties": {"choice": {"enum": [0, 1, 2]}, "reason": {"type": "string", "maxLength": 60}},
          "required": ["choice", "reason"]}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with llama_server(timeout=120) as url:  # LLMUnavailable, with the server's log, if it does not start
        yield url


def test_openai_client_falls_back_from_json_schema_to_a_working_mode(server: str) -> None:
    llm = OpenAICompatLLM("smollm2", base_url=server, free_proposals=False)
    assert llm.chat([{"role": "user", "content": "Say hello."}], max_tokens=8).text
    answer = json.loads(llm.chat([{"role": "user", "content": "Pick 0, 1 or 2."}], schema=SCHEMA, max_tokens=60).text)
    assert answer["choice"] in (0, 1, 2)
    assert llm.mode == "json_object"  # llama.cpp's server answers json_schema with HTTP 500


def test_planner_pick_through_the_server(server: str) -> None:
    llm = OpenAICompatLLM("smollm2", base_url=server, free_proposals=False)
    candidates = [Proposal("knn", {"n_neighbors": k, "p": 2}, origin="bo") for k in (3, 9, 15)]
    variables = {"metric": "accuracy", "direction": "maximize", "history": ["0.95 | n_neighbors=5 p=2"], "n_done": 1}
    assert Planner(llm, timeout=60).pick(variables, candidates) in candidates


def test_a_short_solve_through_the_endpoint_path(server: str) -> None:
    """`--llm http://127.0.0.1:PORT/v1#MODEL`: the spec a user gives, resolved as the CLI does
    (an endpoint proposes freely: the card default, a 2-config initial design, then a pick)."""
    result = Assistant(llm=f"{server}#smollm2", llm_rate=1.0, memory=False).solve(
        Task(data="sklearn:iris", models=["knn"], n_trials=4, cv_folds=2, seed=0))
    info = accounting(studies.load_study(result.study_name))
    assert result.n_trials == 4 and info is not None and info["backend"] == "openai"
    assert info["stats"]["decisions"].get("pick", 0) >= 1 and info["stats"]["valid"] >= 1 and info["used"] >= 1
    assert "llm" in set(result.trials.source)


def test_langchain_chat_model_with_a_forced_tool_call(server: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatModelLLM(ChatOpenAI(model="smollm2", base_url=server, api_key="none", max_retries=0, max_tokens=60),
                       free_proposals=False)
    answer = json.loads(llm.chat([{"role": "user", "content": "Pick 0, 1 or 2."}], schema=SCHEMA, timeout=60).text)
    assert answer["choice"] in (0, 1, 2)
