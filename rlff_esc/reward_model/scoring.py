"""Batched scoring with a saved reward model: what GRPO's reward function and evaluation call.

Replies are sorted by length before batching so that padding stays small, and the scores are returned
in the caller's order. The model scores in :mod:`rlff_esc.llm.precision`'s number type (bfloat16 where
the hardware has it: 284 replies a second against float32's 92 on a CPU with AMX, scores within 0.02).
Higher is better; replies must already be reply-only (no ``<think>`` block).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from rlff_esc.data.schema import Turn
from rlff_esc.llm.precision import inference_dtype
from rlff_esc.reward_model.inputs import as_turns, encode_pairs
from rlff_esc.reward_model.model import load_reward_model


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class RewardModelScorer:
    """Loads a reward model folder written by ``rlff-esc rm train`` and scores (history, reply) pairs."""

    def __init__(self, path: str | Path, batch_size: int = 32, device: str | None = None, dtype: str = "auto"):
        self.path = Path(path)
        self.batch_size = batch_size
        self.device = device or default_device()
        self.model, self.tokenizer, self.info = load_reward_model(self.path, self.device,
                                                                  inference_dtype(dtype, self.device))
        self.max_length = int(self.info["max_length"])
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def encode(self, histories: Sequence[Sequence[Turn | dict] | str], replies: Sequence[str]) -> list[list[int]]:
        if len(histories) != len(replies):
            raise ValueError(f"{len(histories)} histories but {len(replies)} replies")
        return encode_pairs(self.tokenizer, [as_turns(h) for h in histories], replies, self.max_length)

    @torch.inference_mode()
    def score_ids(self, sequences: list[list[int]]) -> list[float]:
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        scores = [0.0] * len(sequences)
        for start in range(0, len(order), self.batch_size):
            batch = [sequences[i] for i in order[start:start + self.batch_size]]
            width = max(len(ids) for ids in batch)
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ids in enumerate(batch):
                input_ids[row, :len(ids)] = torch.tensor(ids)
                attention_mask[row, :len(ids)] = 1
            logits = self.model(input_ids=input_ids.to(self.device),
                                attention_mask=attention_mask.to(self.device)).logits
            for i, value in zip(order[start:start + self.batch_size], logits[:, 0].float().tolist()):
                scores[i] = value
        return scores

    def score(self, histories: Sequence[Sequence[Turn | dict] | str], replies: Sequence[str]) -> list[float]:
        """One score per (history, reply); histories are lists of turns (or strings, see ``as_turns``)."""
        return self.score_ids(self.encode(histories, replies))


def read_requests(path: Path) -> tuple[list[dict], list[list[Turn]], list[str]]:
    """A JSONL file of ``{"history": [turns] | "text", "reply": "text", ...}``; bad lines name line and field."""
    from pydantic import ValidationError

    from rlff_esc.errors import DataError
    from rlff_esc.jsonl import read_jsonl

    if not Path(path).exists():
        raise DataError(path, None, None, "file not found")
    records, histories, replies = [], [], []
    for line, record in read_jsonl(path):
        if not isinstance(record.get("reply"), str):
            raise DataError(path, line, "reply", "expected a string")
        history = record.get("history")
        if not isinstance(history, (str, list)):
            raise DataError(path, line, "history", "expected a list of turns or a string")
        for index, turn in enumerate(history if isinstance(history, list) else []):
            try:
                Turn.model_validate(turn)
            except ValidationError as e:
                first = e.errors()[0]
                field = ".".join(["history", str(index), *map(str, first["loc"])])
                raise DataError(path, line, field, first["msg"]) from None
        histories.append(as_turns(history))
        records.append(record)
        replies.append(record["reply"])
    return records, histories, replies
