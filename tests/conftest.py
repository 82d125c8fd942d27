"""Test setup: every test gets its own HYPERPILOT_HOME, and the network is blocked
(connections to loopback stay allowed, for servers the tests start themselves)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

_real_connect = socket.socket.connect
_real_create_connection = socket.create_connection


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise RuntimeError(f"tests must not use the network (tried to connect to {address!r})")
    _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_create_connection(address: tuple, *args: object, **kwargs: object) -> socket.socket:
    if not _is_local(address):
        raise RuntimeError(f"tests must not use the network (tried to connect to {address!r})")
    return _real_create_connection(address, *args, **kwargs)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.create_connection = _guarded_create_connection  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def hyperpilot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "hyperpilot-home"
    monkeypatch.setenv("HYPERPILOT_HOME", str(home))
    monkeypatch.delenv("HYPERPILOT_STORAGE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    # the planner LLM defaults to the embedded model; tests opt in with Assistant(llm=...)
    monkeypatch.setenv("HYPERPILOT_LLM", "none")
    return home
