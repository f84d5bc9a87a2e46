"""Build the backend that serves a role from its :class:`~rlff_esc.config.ModelSpec`: the one place
where backends are constructed, so that every setting of the spec (``share_prefixes`` included)
reaches every backend.

Roles that name the same model share one loaded instance, so the demo loads SmolLM2 once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlff_esc.llm.base import ChatBackend

if TYPE_CHECKING:
    from rlff_esc.config import ModelSpec
    from rlff_esc.llm.local import LocalBackend

_loaded: dict[tuple, ChatBackend] = {}


def build_backend(spec: ModelSpec) -> ChatBackend:
    if spec.backend == "http":
        from rlff_esc.llm.http import HTTPBackend

        return HTTPBackend(spec.model, base_urls=spec.base_urls, api_key_env=spec.api_key_env,
                           max_concurrency=spec.max_concurrency, timeout_s=spec.timeout_s,
                           max_retries=spec.max_retries)
    key = (spec.model, spec.dtype, spec.device, spec.keep_tokens)
    if key not in _loaded:
        _loaded[key] = load_local(spec)
    return _loaded[key]


def load_local(spec: ModelSpec, model: str | None = None, *, batch_size: int | None = None) -> LocalBackend:
    """A new in-process backend over ``model`` (a folder or name; default the spec's) with the spec's
    settings. Not shared: trained policies load through here so that they can be released."""
    from rlff_esc.llm.local import LocalBackend

    return LocalBackend(model or spec.model, batch_size=batch_size or spec.batch_size, dtype=spec.dtype,
                        device=spec.device, share_prefixes=spec.share_prefixes, keep_tokens=spec.keep_tokens)
