"""Build the backend that serves a role from its :class:`~rlff_esc.config.ModelSpec`.

Roles that name the same model share one loaded instance, so the demo loads SmolLM2 once.
"""

from __future__ import annotations

from rlff_esc.config import ModelSpec
from rlff_esc.llm.base import ChatBackend

_loaded: dict[tuple, ChatBackend] = {}


def build_backend(spec: ModelSpec) -> ChatBackend:
    if spec.backend == "http":
        from rlff_esc.llm.http import HTTPBackend

        return HTTPBackend(spec.model, base_urls=spec.base_urls, api_key_env=spec.api_key_env,
                           max_concurrency=spec.max_concurrency, timeout_s=spec.timeout_s,
                           max_retries=spec.max_retries)
    key = (spec.model, spec.dtype, spec.device)
    if key not in _loaded:
        from rlff_esc.llm.local import LocalBackend

        _loaded[key] = LocalBackend(spec.model, batch_size=spec.batch_size, dtype=spec.dtype, device=spec.device,
                                    share_prefixes=spec.share_prefixes)
    return _loaded[key]

