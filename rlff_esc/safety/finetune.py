"""The fine-tuned crisis classifier: MiniLM and the linear head trained together, starting from the head
fitted on frozen MiniLM vectors (``head.json``; a linear probe, then fine-tuning: on one dev fold a randomly
initialised head reached 0.77 recall at precision 0.80, the probe's start 0.91). A frozen encoder
places veiled wording ("I've written the letters", "won't be a problem much longer") beside ordinary
sadness; letting it move is what lifts recall.

Measured on the dev set (5 grouped folds, each fold's probe and fine-tuning on its training rows only;
``train.py``, 2,160 messages): with the lexicon it catches 0.89 of dev crisis messages at precision 0.85,
flagging 1.4% of ESConv valid seeker turns, where the frozen encoder's head caught 0.70 at precision 0.80.

The weights are not shipped: ``rlff-esc safety finetune`` (run by ``make setup``) trains them from the
packaged head, its recipe (``head.json``'s ``finetuned``), the dev set and ESConv train seeker turns into
the model cache (4–5 minutes and 2.4 GB on two AVX2 cores, bit for bit the model measured); the
folder's name is the fingerprint of those inputs, so a changed head or recipe trains a new model. Word embeddings (half
the parameters) stay frozen; batches hold messages of similar length, which halves the time against
random batches (373 → 185 s for one fold's model).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rlff_esc.errors import ConfigError
from rlff_esc.llm.embedded import cache_dir, resolve_model

log = logging.getLogger(__name__)

HEAD_WEIGHTS = "head.safetensors"


@dataclass(frozen=True)
class FinetuneRecipe:
    """How the encoder is fine-tuned; chosen on the dev set's grouped folds."""

    epochs: int = 3
    esconv_windows_per_epoch: int = 2000  # ESConv negatives drawn afresh each epoch
    lr: float = 3e-5  # encoder
    head_lr: float = 9e-4  # the head, already near its optimum, moves at 30 times the encoder's rate
    warmup: float = 0.1  # share of steps with a rising rate; linear decay after
    weight_decay: float = 0.01
    batch_size: int = 32
    crisis_weight: float = 2.0  # a crisis message's weight in the loss (a negative's is 1)
    seed: int = 13


class CrisisModel:
    """MiniLM with a linear head over its mean-pooled, normalised output (the vector the probe was fitted
    on): ``logits(texts)`` for training, ``probabilities(texts)`` for scoring."""

    def __init__(self, encoder_path: str, coef, intercept):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(encoder_path)
        self.encoder = AutoModel.from_pretrained(encoder_path)
        self.head = torch.nn.Linear(len(coef[0]), len(coef))
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(np.asarray(coef, dtype=np.float32)))
            self.head.bias.copy_(torch.as_tensor(np.asarray(intercept, dtype=np.float32)))
        self.eval()

    def train(self) -> None:
        self.encoder.train()

    def eval(self) -> None:
        self.encoder.eval()

    def logits(self, texts: list[str]):
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        return self.head(pooled)

    def probabilities(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, (n, classes); texts go in batches of similar length."""
        import torch

        out = np.zeros((len(texts), self.head.out_features), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                out[rows] = torch.softmax(self.logits([texts[i] for i in rows]), dim=-1).numpy()
        return out

    def save(self, folder: Path, meta: dict) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        save_file({"weight": self.head.weight.detach().contiguous(), "bias": self.head.bias.detach().contiguous()},
                  str(folder / HEAD_WEIGHTS))
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")  # last: marks the folder complete

    @classmethod
    def load(cls, folder: Path) -> CrisisModel:
        from safetensors.numpy import load_file

        head = load_file(str(folder / HEAD_WEIGHTS))
        return cls(str(folder), head["weight"], head["bias"])


def fingerprint(head: dict, recipe: FinetuneRecipe) -> str:
    """What a fine-tuned model is trained from: the probe, the recipe and the dev set (ESConv train, the
    negatives, is recorded beside the model)."""
    inputs = {"encoder": head["encoder"], "coef": head["coef"], "intercept": head["intercept"],
              "dev_sha256": head["trained_on"]["dev_sha256"], "recipe": asdict(recipe)}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def model_folder(head: dict) -> Path:
    """Where the model fine-tuned from this head lives in the cache."""
    tuned = head.get("finetuned")
    if not tuned:
        raise ConfigError("the safety classifier's head has no 'finetuned' recipe; retrain it with "
                          "`rlff-esc safety train --esconv DIR`")
    return cache_dir() / "safety" / f"crisis-{tuned['fingerprint']}"


def load_finetuned(head: dict) -> CrisisModel:
    """The fine-tuned model for this head, or a clear error saying how to train it."""
    folder = model_folder(head)
    if not (folder / "meta.json").exists():
        raise ConfigError(f"the fine-tuned crisis classifier is not in {folder}; train it once with "
                          f"`rlff-esc safety finetune` (`make setup` does), or set serve.safety.classifier: "
                          f"false for the lexicon alone")
    return CrisisModel.load(folder)


def finetune(encoder: str, texts: list[str], classes: list[int], esconv_windows: list[str], coef, intercept,
             recipe: FinetuneRecipe, *, progress: bool = True) -> CrisisModel:
    """Fine-tune ``encoder`` (a model name) from the probe ``coef``/``intercept`` on labelled ``texts``
    (class indices) and ESConv windows (class 0), ``recipe.esconv_windows_per_epoch`` of them an epoch."""
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    model = CrisisModel(resolve_model(encoder), coef, intercept)
    model.encoder.embeddings.requires_grad_(False)
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": encoder_params, "lr": recipe.lr},
                                   {"params": model.head.parameters(), "lr": recipe.head_lr}],
                                  weight_decay=recipe.weight_decay)
    drawn = min(recipe.esconv_windows_per_epoch, len(esconv_windows))
    per_epoch = math.ceil((len(texts) + drawn) / recipe.batch_size)
    total = recipe.epochs * per_epoch
    warmup = max(1, int(recipe.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, 1.0 - step / total))
    model.train()
    bar = tqdm(total=total, desc="fine-tuning the crisis classifier", disable=not progress)
    for _ in range(recipe.epochs):
        items = [(t, c, recipe.crisis_weight if c else 1.0) for t, c in zip(texts, classes)]
        items += [(w, 0, 1.0) for w in rng.sample(esconv_windows, drawn)]
        for batch in _length_batches(items, recipe.batch_size, rng):
            logits = model.logits([t for t, _, _ in batch])
            target = torch.tensor([c for _, c, _ in batch])
            weight = torch.tensor([w for _, _, w in batch])
            loss = (torch.nn.functional.cross_entropy(logits, target, reduction="none") * weight).sum() / weight.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return model


def _length_batches(items: list, size: int, rng: random.Random, pool: int = 16) -> list[list]:
    """Shuffled batches of texts of similar length: shuffle, sort each run of ``pool`` batches by length,
    cut, shuffle the batches."""
    rng.shuffle(items)
    batches = []
    for start in range(0, len(items), size * pool):
        run = sorted(items[start:start + size * pool], key=lambda item: len(item[0]))
        batches += [run[i:i + size] for i in range(0, len(run), size)]
    rng.shuffle(batches)
    return batches
