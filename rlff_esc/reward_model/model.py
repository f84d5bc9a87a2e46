"""Reward-model backbones, saved and loaded in Hugging Face format.

* BERT-like encoders (``embedded:minilm``, all-MiniLM-L6-v2): a sentence-transformers model is
  trained to be read through the **mean** of its token states, not through [CLS] (its BERT pooler was
  never trained for that), so :class:`MeanPoolRewardModel` puts a linear score head on a masked mean:
  over every token (``pooling: all``, the default) or over the reply's tokens only (``reply``), which
  have read the history through attention. The README says what each did in the demo.
* Any causal LM (SmolLM2 here, a 7–8B model on GPUs): ``AutoModelForSequenceClassification`` with one
  label, whose score head reads the last non-padding token; ``config.pad_token_id`` must be set.

``train_layers`` (full fine-tuning only) freezes the embeddings and all but the top k transformer layers;
0 trains the score head alone on frozen features, which is several times cheaper on a CPU and less
prone to over-fit a few hundred pairs. With ``lora`` the backbone gets LoRA adapters (the score head is trained in full); adapters are merged
before saving, so a saved reward model loads alone. ``reward_model.json`` beside the weights says
which head it is, the objective and ``max_length``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import logging as hf_logging
from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel

from rlff_esc.errors import RlffError
from rlff_esc.llm.embedded import resolve_model

INFO_FILE = "reward_model.json"
MEAN_POOL, SCORE_HEAD = "mean_pool", "score_head"


class MeanPoolRewardModel(BertPreTrainedModel):
    """A BERT encoder and a linear score on the mean of its last hidden states.

    ``config.pooling`` says which states: ``reply`` (those after the first [SEP], i.e. the reply of
    ``[CLS] history [SEP] reply [SEP]``) or ``all``; models saved before the option existed read ``all``.
    """

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.score = nn.Linear(config.hidden_size, 1)
        self.pooling = getattr(config, "pooling", "all")
        self.post_init()

    def pooling_mask(self, input_ids, attention_mask):
        if self.pooling == "all":
            return attention_mask
        is_sep = (input_ids == self.config.sep_token_id).long()
        reply = (torch.cumsum(is_sep, dim=1) > is_sep).long() * attention_mask
        return torch.where(reply.sum(dim=1, keepdim=True) > 0, reply, attention_mask)  # no [SEP]: all

    def forward(self, input_ids, attention_mask=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = self.pooling_mask(input_ids, attention_mask).unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return SequenceClassifierOutput(logits=self.score(pooled))


def head_for(path: str) -> str:
    model_type = AutoConfig.from_pretrained(path).model_type
    return MEAN_POOL if model_type == "bert" else SCORE_HEAD


LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")


def freeze_below(model, train_layers: int) -> None:
    """Freeze the embeddings and every transformer layer but the top ``train_layers``."""
    depth = model.config.num_hidden_layers
    for name, param in model.named_parameters():
        layer = LAYER_INDEX.search(name)
        if "embed" in name or (layer and int(layer.group(1)) < depth - train_layers):
            param.requires_grad_(False)


def load_backbone(name: str, lora: bool = False, lora_r: int = 16, lora_alpha: int = 32,
                  train_layers: int | None = None, pooling: str = "all"):
    """A fresh reward model (pretrained body, new head) and its tokenizer; returns (model, tokenizer, head)."""
    path = resolve_model(name)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the new score head (and BERT's unused pooler)
    try:
        head = head_for(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        if head == MEAN_POOL:
            config = AutoConfig.from_pretrained(path, num_labels=1)
            config.pooling, config.sep_token_id = pooling, tokenizer.sep_token_id
            model = MeanPoolRewardModel.from_pretrained(path, config=config)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    except (OSError, ValueError) as e:
        raise RlffError(f"reward_model.backbone: cannot load {name!r} ({path}): {e}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.architectures = [type(model).__name__]
    if lora:
        from peft import LoraConfig, get_peft_model

        peft_config = LoraConfig(task_type="SEQ_CLS", r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                                 target_modules="all-linear", modules_to_save=["score"])
        model = get_peft_model(model, peft_config)
    elif train_layers is not None:
        freeze_below(model, train_layers)
    return model, tokenizer, head


def save_reward_model(model, tokenizer, path: Path, info: dict) -> None:
    """Weights + tokenizer in HF format (LoRA merged) and ``reward_model.json``."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / INFO_FILE).write_text(json.dumps(info, indent=2))


def read_info(path: Path) -> dict | None:
    file = Path(path) / INFO_FILE
    return json.loads(file.read_text()) if file.exists() else None


def load_reward_model(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """A saved reward model for scoring, in ``dtype``: returns (model in eval mode, tokenizer, info)."""
    path = Path(path)
    info = read_info(path)
    if info is None:
        raise RlffError(f"{path}: not a reward model folder (no {INFO_FILE}); train one with `rlff-esc rm train`")
    cls = MeanPoolRewardModel if info["head"] == MEAN_POOL else AutoModelForSequenceClassification
    model = cls.from_pretrained(path, dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, info
