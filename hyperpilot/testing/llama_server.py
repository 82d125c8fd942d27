"""llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`, from the
llama-cpp-python[server] extra) serving the bundled SmolLM2 GGUF on 127.0.0.1: a real
endpoint for the endpoint path's tests and benchmarks, with nothing to download.

    with llama_server() as url:          # "http://127.0.0.1:PORT/v1", model alias "smollm2"
        OpenAICompatLLM("smollm2", base_url=url)
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from hyperpilot.agent.llm import LLMUnavailable, smollm2_path

MODEL = "smollm2"


@contextmanager
def llama_server(timeout: float = 120.0, threads: int = 1) -> Iterator[str]:
    """Start the server on a free 127.0.0.1 port, wait until it answers `/v1/models`, yield its
    base URL, and stop it afterwards. Raises `LLMUnavailable` with the end of the server's log
    when it exits or does not answer within `timeout` seconds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: the server logs a lot and would block on a full pipe
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
                                 "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port),
                                 "--n_threads", str(threads), "--n_ctx", "4096"], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"{url}/models", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        tail = log.read()[-1500:].decode(errors="replace")
                        raise LLMUnavailable(f"llama.cpp server did not start: {tail}") from None
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
