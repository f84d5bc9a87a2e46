"""Frozen MiniLM sentence embeddings: the one loaded encoder per process (:func:`sentence_encoder`, read by
the strategy planner, the quality metrics, the safety classifier and the reward model's trivial scorer),
and an on-disk cache over it shared by the learned critic, the role classifier and the seeker-realism
measures.

Encoding is the slow part of everything built on MiniLM (about 200 utterances/s on two cores), and
the same ESConv utterances are encoded again by every training run, benchmark and test. So each
text's vector is cached by the text's hash in one ``.npz`` file per model; a second run encodes only
what it has not seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from rlff_esc.llm.embedded import cache_dir, resolve_model

log = logging.getLogger(__name__)

DIM = 384  # all-MiniLM-L6-v2


@lru_cache(maxsize=4)
def sentence_encoder(model: str = "embedded:minilm", max_seq_length: int = 128):
    """The loaded ``SentenceTransformer`` (on CPU), once per model and input length per process."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(resolve_model(model), device="cpu")
    encoder.max_seq_length = max_seq_length
    return encoder


def encode_uncached(texts: list[str], model: str = "embedded:minilm", *, max_seq_length: int = 128,
                    batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Vectors with no cache: for text that must not be kept, such as what people write to a server."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return sentence_encoder(model, max_seq_length).encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress,
        convert_to_numpy=True).astype(np.float32)


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def default_cache_path(model: str, max_seq_length: int) -> Path:
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in model)
    return cache_dir() / "embeddings" / f"{name}-{max_seq_length}.npz"


class Encoder:
    """``encode(texts) -> (n, dim)`` L2-normalised float32 vectors; unseen texts are encoded in
    batches (longest-first sorting is done by sentence-transformers) and added to the cache, which
    is written back after large batches unless ``autosave`` is off (then only by :meth:`save`)."""

    def __init__(self, model: str = "embedded:minilm", *, batch_size: int = 64, max_seq_length: int = 128,
                 cache_path: str | Path | None = "default", autosave: bool = True):
        self.model_name = model
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache_path = (default_cache_path(model, max_seq_length) if cache_path == "default"
                           else Path(cache_path) if cache_path else None)
        self._cache: dict[str, np.ndarray] = {}
        self._dirty = False
        self.autosave = autosave
        if self.cache_path and self.cache_path.exists():
            try:
                with np.load(self.cache_path) as data:
                    self._cache = dict(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, ValueError, KeyError) as e:  # a damaged cache is only lost time
                log.warning("ignoring unreadable embedding cache %s: %s", self.cache_path, e)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        keys = [_key(t) for t in texts]
        missing = list({k: t for k, t in zip(keys, texts) if k not in self._cache}.items())
        if missing:
            vectors = encode_uncached([t for _, t in missing], self.model_name, max_seq_length=self.max_seq_length,
                                      batch_size=self.batch_size, progress=progress)
            self._cache.update(zip((k for k, _ in missing), vectors))
            self._dirty = True
            if self.autosave and len(missing) >= 256:  # worth keeping; small batches are not
                self.save()
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys])

    def save(self) -> None:
        """Write the cache atomically (two processes saving at once lose entries, never the file)."""
        if not (self.cache_path and self._dirty):
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(f".{self.cache_path.stem}.{os.getpid()}.npz")
        np.savez(tmp, keys=np.array(list(self._cache)), vectors=np.stack(list(self._cache.values())))
        os.replace(tmp, self.cache_path)
        self._dirty = False


@lru_cache(maxsize=4)
def shared_encoder(model: str = "embedded:minilm") -> Encoder:
    """One encoder (and one loaded cache) per model per process."""
    return Encoder(model)
