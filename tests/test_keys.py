"""API keys go only to the host they belong to: a real HTTP server on 127.0.0.1 records the
Authorization header of every request the real `openai` client makes through hyperpilot."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fake_openai import FakeOpenAI, serve_fake_openai
from typer.testing import CliRunner

from hyperpilot.agent.llm import LLMError, LLMUnavailable, OpenAICompatLLM, resolve_llm
from hyperpilot.agent.llm.base import redact
from hyperpilot.agent.llm.openai_compat import OPENAI_URL, is_loopback
from hyperpilot.cli import app

OPENAI_KEY = "sk-openai-parent-secret-0123456789"
HP_KEY = "hp-key-for-my-vllm-4242"
OWN_KEY = "own-vllm-key-7777"
MESSAGES = [{"role": "user", "content": "Say hi."}]
KEY_VARS = ("OPENAI_API_KEY", "HYPERPILOT_API_KEY", "MY_VLLM_KEY", "OPENAI_CUSTOM_HEADERS", "OPENAI_ORG_ID",
            "OPENAI_PROJECT_ID", "OPENAI_BASE_URL", "OPENAI_ADMIN_KEY", "HYPERPILOT_LLM_KEY_ENV")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with serve_fake_openai() as server:
        yield server


@pytest.fixture
def server_url(server: FakeOpenAI) -> str:
    return server.url  # keeps the headers of every request; model `deny` answers 401 echoing the key


@pytest.fixture(autouse=True)
def parent_env(monkeypatch: pytest.MonkeyPatch, server: FakeOpenAI) -> Iterator[list[dict[str, str]]]:
    """The shell of a user with an OpenAI key and the `openai` client's other variables set,
    all of which must stay away from any server that is not OpenAI's."""
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-parent")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-parent")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", f"Authorization: Bearer {OPENAI_KEY}\nX-Parent-Secret: s3cr3t-header")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://redirected.invalid/v1")  # must not redirect anything
    server.forget()
    yield server.headers


def _leaks(headers: dict[str, str]) -> list[str]:
    text = json.dumps(headers)
    return [s for s in (OPENAI_KEY, "org-parent", "proj-parent", "s3cr3t-header") if s in text]


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every connection attempt and DNS lookup from here on, recorded and refused."""
    attempts: list[object] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


# -- which key reaches which server ------------------------------------------------------

def test_openai_key_never_reaches_another_server(server_url: str, parent_env: list[dict[str, str]]) -> None:
    llm = resolve_llm(f"{server_url}#m")
    assert isinstance(llm, OpenAICompatLLM)
    assert llm.chat(MESSAGES, max_tokens=4).text == "hi"
    assert len(parent_env) == 1
    headers = parent_env[0]
    assert "authorization" not in headers  # no key at all: a local server needs none
    assert _leaks(headers) == []
    assert "x-parent-secret" not in headers and "openai-organization" not in headers


def test_hyperpilot_api_key_reaches_the_server(server_url: str, parent_env: list[dict[str, str]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERPILOT_API_KEY", HP_KEY)
    llm = resolve_llm(f"{server_url}#m")
    assert llm is not None
    llm.chat(MESSAGES, max_tokens=4)
    assert parent_env[-1]["authorization"] == f"Bearer {HP_KEY}"
    assert _leaks(parent_env[-1]) == []


@pytest.mark.parametrize("how", ["resolve_llm", "spec", "constructor"])
def test_key_env_reaches_the_server(how: str, server_url: str, parent_env: list[dict[str, str]],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERPILOT_API_KEY", HP_KEY)  # the named variable wins over it
    monkeypatch.setenv("MY_VLLM_KEY", OWN_KEY)
    llm = {"resolve_llm": lambda: resolve_llm(f"{server_url}#m", key_env="MY_VLLM_KEY"),
           "spec": lambda: resolve_llm(f"{server_url}#m?key_env=MY_VLLM_KEY"),
           "constructor": lambda: OpenAICompatLLM("m", base_url=server_url, api_key_env="MY_VLLM_KEY")}[how]()
    assert isinstance(llm, OpenAICompatLLM) and llm.model == "m"
    llm.chat(MESSAGES, max_tokens=4)
    assert parent_env[-1]["authorization"] == f"Bearer {OWN_KEY}"
    assert _leaks(parent_env[-1]) == []


def test_explicit_api_key_reaches_the_server(server_url: str, parent_env: list[dict[str, str]]) -> None:
    OpenAICompatLLM("m", base_url=server_url, api_key="explicit-key-1").chat(MESSAGES, max_tokens=4)
    assert parent_env[-1]["authorization"] == "Bearer explicit-key-1"


def test_key_env_that_is_not_set_or_not_a_name() -> None:
    with pytest.raises(LLMUnavailable, match="MY_VLLM_KEY is not set"):
        resolve_llm("http://127.0.0.1:8000/v1#m", key_env="MY_VLLM_KEY")
    with pytest.raises(LLMError, match="name of an environment variable") as info:
        resolve_llm("http://127.0.0.1:8000/v1#m", key_env=OPENAI_KEY)
    assert OPENAI_KEY not in str(info.value)  # someone who passed the key itself does not see it echoed
    assert resolve_llm("none", key_env="MY_VLLM_KEY") is None  # other backends ignore it


def test_openai_spec_uses_the_openai_key_and_only_openais_url(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = resolve_llm("openai:gpt-4o-mini")
    assert isinstance(llm, OpenAICompatLLM) and llm.is_openai and llm.url == OPENAI_URL
    assert llm.key() == OPENAI_KEY
    assert llm.client().base_url.host == "api.openai.com"  # not $OPENAI_BASE_URL; no request is made
    assert resolve_llm("https://api.openai.com/v1#gpt-4o").key() == OPENAI_KEY  # type: ignore[union-attr]
    other = resolve_llm("https://llm.example.invalid/v1#m")  # https elsewhere: HYPERPILOT_API_KEY only
    assert isinstance(other, OpenAICompatLLM) and other.key() is None
    monkeypatch.setenv("HYPERPILOT_API_KEY", HP_KEY)
    assert other.key() == HP_KEY
    monkeypatch.delenv("OPENAI_API_KEY")
    assert resolve_llm("openai:gpt-4o-mini").key() == HP_KEY  # type: ignore[union-attr]


# -- no key over plain http to another machine --------------------------------------------

@pytest.mark.parametrize("url", ["http://llm.internal.invalid:8000/v1", "http://10.0.0.7:8000/v1",
                                 "http://[2001:db8::1]:8000/v1"])
def test_key_over_plain_http_to_another_host_is_refused_before_connecting(
        url: str, no_connections: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERPILOT_API_KEY", HP_KEY)
    with pytest.raises(LLMError, match="refusing to send the API key .*plain http") as info:
        resolve_llm(f"{url}#m")
    message = str(info.value)
    assert "HYPERPILOT_API_KEY" in message and HP_KEY not in message and "\n" not in message
    with pytest.raises(LLMError, match="refusing"):
        OpenAICompatLLM("m", base_url=url, api_key="explicit-key-1")
    monkeypatch.setenv("MY_VLLM_KEY", OWN_KEY)
    with pytest.raises(LLMError, match="from MY_VLLM_KEY"):
        resolve_llm(f"{url}#m", key_env="MY_VLLM_KEY")
    llm = OpenAICompatLLM("m", base_url=url)  # built without the check: the first chat refuses
    with pytest.raises(LLMError, match="refusing"):
        llm.chat(MESSAGES)
    assert no_connections == []


def test_no_key_over_plain_http_is_fine_and_https_carries_a_key(no_connections: list[object],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_llm("http://llm.internal.invalid:8000/v1#m") is not None  # nothing to protect
    monkeypatch.setenv("HYPERPILOT_API_KEY", HP_KEY)
    assert resolve_llm("https://llm.internal.invalid/v1#m").key() == HP_KEY  # type: ignore[union-attr]
    for url in ("http://localhost:8000/v1", "http://127.0.0.1:8000/v1", "http://[::1]:8000/v1", "http://0.0.0.0:8000/v1"):
        assert resolve_llm(f"{url}#m").key() == HP_KEY  # type: ignore[union-attr]
    assert no_connections == []


def test_is_loopback() -> None:
    assert all(map(is_loopback, ["localhost", "LOCALHOST", "vllm.localhost", "127.0.0.1", "127.8.9.10", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["", "example.com", "localhost.example.com", "10.0.0.1", "192.168.1.2", "2001:db8::1"]))


def test_cli_refuses_with_one_line(monkeypatch: pytest.MonkeyPatch, no_connections: list[object]) -> None:
    monkeypatch.setenv("HYPERPILOT_API_KEY", HP_KEY)
    env = {"HYPERPILOT_LLM": "none", "COLUMNS": "240"}
    for args in (["solve", "--data", "sklearn:iris"], ["demo"], ["resume", "some-study"]):
        result = CliRunner().invoke(app, [*args, "--llm", "http://llm.internal.invalid:8000/v1#m"], env=env)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and errors[0].startswith("error: refusing to send the API key"), result.output
        assert result.output.rstrip().endswith("(unset HYPERPILOT_API_KEY)")  # one line, nothing after it
        assert HP_KEY not in result.output and OPENAI_KEY not in result.output
    result = CliRunner().invoke(app, ["solve", "--data", "sklearn:iris", "--llm", "http://127.0.0.1:9/v1#m",
                                      "--llm-key-env", "MY_VLLM_KEY"], env=env)
    assert result.exit_code == 2 and "MY_VLLM_KEY is not set" in result.output
    assert no_connections == []


def test_cli_llm_key_env_reaches_the_server(server_url: str, parent_env: list[dict[str, str]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_VLLM_KEY", OWN_KEY)
    result = CliRunner().invoke(app, ["solve", "--data", "sklearn:iris", "--model", "knn", "--trials", "2", "--folds", "2",
                                      "--no-sandbox", "--no-memory", "--llm", f"{server_url}#m",
                                      "--llm-key-env", "MY_VLLM_KEY"], env={"COLUMNS": "240", "OMP_NUM_THREADS": "1"})
    assert result.exit_code == 0, result.output
    assert parent_env, "the planner never called the server"
    assert {h.get("authorization") for h in parent_env} == {f"Bearer {OWN_KEY}"}
    assert OWN_KEY not in result.output and OPENAI_KEY not in result.output


# -- redaction -------------------------------------------------------------------------------

def test_a_key_the_server_echoes_is_redacted(server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_VLLM_KEY", OWN_KEY)
    llm = resolve_llm(f"{server_url}#deny", key_env="MY_VLLM_KEY")
    assert llm is not None
    with pytest.raises(LLMUnavailable, match="refused the key") as info:
        llm.chat(MESSAGES)
    assert OWN_KEY not in str(info.value) and "***" in str(info.value)
    assert info.value.__cause__ is None  # the raw client error (with the key) is not chained


def test_describe_hides_url_credentials(server_url: str) -> None:
    url = server_url.replace("http://", "http://user:url-password-1@") + "?api_key=query-secret-2"
    llm = OpenAICompatLLM("m", base_url=url)
    assert "url-password-1" not in llm.describe() and "query-secret-2" not in llm.describe()
    assert llm.describe().startswith("http://127.0.0.1:")


def test_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERPILOT_API_KEY", HP_KEY)
    text = redact(f"401: key {OPENAI_KEY} / {HP_KEY}; header Authorization: Bearer abc.def-123456; task-abcdefghij")
    assert OPENAI_KEY not in text and HP_KEY not in text and "abc.def-123456" not in text
    assert "task-abcdefghij" in text and text.count("***") == 3
