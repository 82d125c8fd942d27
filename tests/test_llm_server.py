"""A real OpenAI-compatible server: llama.cpp's (`python -m llama_cpp.server`, serving the
embedded SmolLM2 GGUF on 127.0.0.1), reached through the `openai` client backend and a
LangChain `ChatOpenAI` — the structured-output fallbacks against the real thing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("uvicorn", reason="the llama-cpp-python[server] extra is not installed")
pytest.importorskip("sse_starlette", reason="the llama-cpp-python[server] extra is not installed")

from hyperpilot import Assistant, Task, studies  # noqa: E402
from hyperpilot.agent.llm import ChatModelLLM, OpenAICompatLLM, smollm2_path  # noqa: E402
from hyperpilot.agent.planner import Planner, Proposal  # noqa: E402
from hyperpilot.report import accounting  # noqa: E402

SCHEMA = {"type": "object", "properties": {"choice": {"enum": [0, 1, 2]}, "reason": {"type": "string", "maxLength": 60}},
          "required": ["choice", "reason"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as sink:  # a file, not a pipe: the server logs a lot and would block on a full pipe
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()), "--model_alias", "smollm2",
             "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "4096"],
            stdout=sink, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama.cpp server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


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
