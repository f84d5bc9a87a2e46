"""Chat backends: one small interface (``generate``, ``loglikelihood``) that every model server implements."""

from rlff_esc.llm.base import ChatBackend, Generation, GenerationRequest, Message

__all__ = ["ChatBackend", "Generation", "GenerationRequest", "Message"]
