"""Attention for grouped key/value heads on CPU, without copying the cache for every query head.

SmolLM2, Qwen2.5 and Llama 3 give several query heads one key/value head. Transformers' ``sdpa``
attention passes the grouped heads to torch as they are only when no mask is given; our batches are
padded, so a mask always is, and it then copies every key and value to each of its query heads first
(``repeat_kv``) when it reads a prompt. On a CPU that copy took 12% of a simulation batch's time. Torch's
``scaled_dot_product_attention`` takes the grouped heads with a mask too (``enable_gqa``), which is
what ``sdpa_gqa`` does; the masks are ``sdpa``'s own. On a GPU the fused kernels need ``sdpa``'s way,
so models load with it on the CPU only (:func:`implementation_on`), for inference and training.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "sdpa_gqa"


def sdpa_gqa_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """``sdpa`` attention with grouped heads left grouped; returns (batch, positions, heads, head size).
    One new token a row (decoding) goes to ``sdpa`` itself, which folds the query heads onto their
    key/value head without a copy there."""
    if query.shape[2] == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    output = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=attention_mask is None and is_causal, enable_gqa=query.shape[1] != key.shape[1])
    return output.transpose(1, 2).contiguous(), None


def implementation_on(device: str) -> str | None:
    """The attention a model is loaded with on ``device`` (for ``attn_implementation``): this module's on
    the CPU, transformers' default elsewhere."""
    return NAME if device == "cpu" else None


AttentionInterface.register(NAME, sdpa_gqa_forward)
AttentionMaskInterface.register(NAME, sdpa_mask)
