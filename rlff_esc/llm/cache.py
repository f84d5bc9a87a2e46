"""A key/value cache that grows in place.

Transformers' ``DynamicCache`` appends each decoded token by concatenation: every decode step copies
every layer's keys and values of every row: with 16 rows of 300-token prompts, 220 MB a step for
SmolLM2-135M. Writing in place instead made the interactive evaluation 1.47x faster on a 2-core CPU
(README, "Evaluation").

:class:`GrowingCache` keeps each layer in a buffer with room to spare (``reserve`` positions, the
generation budget) and writes new positions into it; the cache's ``keys`` and ``values`` are views of
the filled part, so the model and the rest of ``DynamicCache``'s methods see what they always see. An
operation that replaces the tensors (rows leaving the batch, reordering) is noticed at the next write,
which then copies once into a fresh buffer.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class GrowingLayer(DynamicLayer):
    def __init__(self, reserve: int = 0):
        super().__init__()
        self.reserve = reserve
        self._keys: torch.Tensor | None = None  # (rows, heads, capacity, head size)
        self._values: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length, new = self.get_seq_length(), key_states.shape[-2]
        if (self._keys is None or self._keys.shape[0] != key_states.shape[0]
                or length + new > self._keys.shape[-2] or self.keys.data_ptr() != self._keys.data_ptr()):
            self._reallocate(length, length + new + max(self.reserve, (length + new) // 2), key_states)
        self._keys[:, :, length:length + new] = key_states
        self._values[:, :, length:length + new] = value_states
        self.keys, self.values = self._keys[:, :, :length + new], self._values[:, :, :length + new]
        return self.keys, self.values

    def adopt(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        """Take ``keys`` and ``values`` (rows, heads, capacity, head size) as this layer's buffers, their
        first ``length`` positions filled: a cache assembled in place, without a copy."""
        self.lazy_initialization(keys, values)
        self._keys, self._values = keys, values
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def release(self) -> None:
        """Drop this layer's tensors now: it is not used again, and its memory is free before the
        cache object goes."""
        self._keys = self._values = self.keys = self.values = None

    def _reallocate(self, length: int, capacity: int, like: torch.Tensor) -> None:
        shape = (like.shape[0], like.shape[1], capacity, like.shape[-1])
        keys, values = like.new_empty(shape), like.new_empty(shape)
        if length:
            keys[:, :, :length], values[:, :, :length] = self.keys, self.values
        self._keys, self._values = keys, values


class GrowingCache(DynamicCache):
    """A ``DynamicCache`` of :class:`GrowingLayer` with room for ``reserve`` more positions per layer."""

    def __init__(self, reserve: int = 0):
        Cache.__init__(self, layer_class_to_replicate=lambda: GrowingLayer(reserve))
        self.reserve = reserve

    def release(self) -> None:
        """Drop every layer's tensors (the cache has been copied where it is needed)."""
        for layer in self.layers:
            layer.release()
