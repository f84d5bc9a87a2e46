"""``rm train``: fit the reward model on simulated trajectories, save it, measure it on held-out dialogues.

Objectives (``reward_model.objective``):

* ``pairwise`` (default): TRL's ``RewardTrainer`` with the Bradley–Terry loss
  ``-log σ(r_chosen − r_rejected − margin)``, the margin being the simulated reward gap
  (``reward_model.use_margin``).
* ``pointwise``: regression of the simulated reward (mean squared error), with transformers' ``Trainer``.
* ``classification``: the ``success`` label (binary cross-entropy on one logit), with ``Trainer``.

The stage is skipped when ``<run>/reward_model/`` already holds a model trained from the same
trajectories and contexts (SHA-256), backbone weights and settings, unless ``force``. The new model is
trained in ``<run>/reward_model.partial/`` with a checkpoint every ``reward_model.save_steps`` steps
and swapped in only once it is complete: a killed run leaves the old model and resumes from the last
checkpoint.
:func:`cross_validate` measures the same settings by K-fold cross-validation over dialogues, for data
sets too small for one held-out split to say much.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from torch import nn
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from rlff_esc.config import Config, RewardModelSection
from rlff_esc.errors import RlffError
from rlff_esc.jsonl import read_json, write_json
from rlff_esc.manifest import record_stage
from rlff_esc.processes import is_main_process, process_count
from rlff_esc.reward_model import metrics as M
from rlff_esc.reward_model.data import Item, Pair, build_pairs, load_items, split_by_dialogue
from rlff_esc.reward_model.inputs import encode_pairs
from rlff_esc.reward_model.model import load_backbone, save_reward_model
from rlff_esc.reward_model.scoring import RewardModelScorer
from rlff_esc.stages import StagedFolder, file_digest, model_digest

log = logging.getLogger(__name__)


def _training_args(cls, rm: RewardModelSection, seed: int, checkpoints: Path | None, scratch: str, **extra):
    """Checkpoints every ``save_steps`` into ``checkpoints`` (none when None: cross-validation folds)."""
    cuda = torch.cuda.is_available()
    saving = {"save_strategy": "steps", "save_steps": rm.save_steps, "save_total_limit": 2} if checkpoints else \
        {"save_strategy": "no"}
    return cls(output_dir=str(checkpoints or scratch), num_train_epochs=rm.epochs,
               per_device_train_batch_size=rm.batch_size, learning_rate=rm.learning_rate,
               lr_scheduler_type="linear", logging_steps=5, report_to="none", seed=seed, use_cpu=not cuda,
               bf16=cuda and torch.cuda.is_bf16_supported(), activation_checkpointing=False,
               dataloader_num_workers=0, **saving, **extra)


def _train(trainer, staged: StagedFolder | None) -> None:
    resume = staged.last_checkpoint() if staged else None
    if resume is not None:
        log.info("reward model: resuming from %s", resume)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)


def _checkpoints(staged: StagedFolder | None) -> Path | None:
    return staged.partial / "checkpoints" if staged else None


def fit_pairwise(model, tokenizer, items: list[Item], pairs: list[Pair], rm: RewardModelSection, seed: int,
                 staged: StagedFolder | None = None):
    """Bradley–Terry training with TRL's RewardTrainer on pre-tokenised (chosen_ids, rejected_ids)."""
    from trl import RewardConfig, RewardTrainer

    ids = encode_pairs(tokenizer, [item.history for item in items], [item.reply for item in items], rm.max_length)
    rows = [{"chosen_ids": ids[p.chosen], "rejected_ids": ids[p.rejected],
             **({"margin": p.margin} if rm.use_margin else {})} for p in pairs]
    with tempfile.TemporaryDirectory(prefix="rlff-rm-") as scratch:
        # max_length=None: inputs are already cut to max_length from the left (RewardTrainer would drop them)
        args = _training_args(RewardConfig, rm, seed, _checkpoints(staged), scratch, max_length=None)
        trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer)
        _train(trainer, staged)
    return trainer.model


class PointwiseTrainer(Trainer):
    """transformers' Trainer with a one-logit loss: MSE on the reward or BCE on success."""

    def __init__(self, *args, loss: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = nn.MSELoss() if loss == "mse" else nn.BCEWithLogitsLoss()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels").float()
        outputs = model(**inputs)
        loss = self.loss_fn(outputs.logits[:, 0].float(), labels)
        return (loss, outputs) if return_outputs else loss


def fit_pointwise(model, tokenizer, items: list[Item], rm: RewardModelSection, seed: int,
                  staged: StagedFolder | None = None):
    if rm.objective == "classification":
        items = [i for i in items if i.success is not None]
    ids = encode_pairs(tokenizer, [i.history for i in items], [i.reply for i in items], rm.max_length)
    label = "success" if rm.objective == "classification" else "reward"
    rows = [{"input_ids": x, "labels": getattr(i, label)} for x, i in zip(ids, items)]
    if not rows:
        raise RlffError("reward_model.objective: classification needs rewards.success in the trajectories")
    with tempfile.TemporaryDirectory(prefix="rlff-rm-") as scratch:
        args = _training_args(TrainingArguments, rm, seed, _checkpoints(staged), scratch,
                              remove_unused_columns=False)
        trainer = PointwiseTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                   data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                                   loss="bce" if rm.objective == "classification" else "mse")
        _train(trainer, staged)
    return trainer.model


def _describe(items: list[Item], pairs: list[Pair]) -> dict:
    return {"items": len(items), "pairs": len(pairs), "contexts": len({i.context_id for i in items}),
            "dialogues": len({i.case_id for i in items})}


def fit_and_save(rm: RewardModelSection, seed: int, train: list[Item], folder: Path, info: dict,
                 staged: StagedFolder | None = None) -> float | None:
    """Train a fresh model on ``train`` and save it (HF format) to ``folder``; returns training seconds.
    With ``staged``, training checkpoints go to its partial folder and resume from the last one.
    Under a multi-process launch every process trains and the main one saves; the others get None."""
    pairs = build_pairs(train, rm.margin_threshold)
    if rm.objective == "pairwise" and not pairs:
        raise RlffError(f"no training pair has a reward gap above reward_model.margin_threshold="
                        f"{rm.margin_threshold}; lower it or simulate more candidates per context")
    set_seed(seed)
    model, tokenizer, head = load_backbone(rm.backbone, rm.lora, rm.lora_r, rm.lora_alpha, rm.train_layers,
                                           rm.pooling)
    start = time.perf_counter()
    if rm.objective == "pairwise":
        model = fit_pairwise(model, tokenizer, train, pairs, rm, seed, staged)
    else:
        model = fit_pointwise(model, tokenizer, train, rm, seed, staged)
    seconds = time.perf_counter() - start
    if not is_main_process():
        return None
    save_reward_model(model, tokenizer, folder, {
        "backbone": rm.backbone, "head": head, "objective": rm.objective, "max_length": rm.max_length,
        "input_format": "history cut from the left + reply (rlff_esc/reward_model/inputs.py)", **info})
    return seconds


def _score(folder: Path, items: list[Item], batch_size: int) -> list[float]:
    return RewardModelScorer(folder, batch_size=batch_size).score([i.history for i in items],
                                                                  [i.reply for i in items])


def compare_scorers(items: list[Item], model_scores: list[float], margin_threshold: float) -> dict:
    """Metrics of the reward model's scores and of the trivial scorers on the same items."""
    from rlff_esc.agents.embeddings import sentence_encoder

    pairs = build_pairs(items, margin_threshold)
    encoder = sentence_encoder("embedded:minilm", 256)  # the model's own input length
    return {"reward_model": M.evaluate_scores(items, pairs, model_scores),
            "reply_length": M.evaluate_scores(items, pairs, M.length_scores(items)),
            "minilm_similarity": M.evaluate_scores(items, pairs, M.similarity_scores(items, encoder))}


def reward_model_inputs(config: Config) -> dict:
    paths, rm = config.paths, config.reward_model
    return {"trajectories": file_digest(paths.trajectories()), "contexts": file_digest(paths.contexts),
            "reward": config.simulate.reward, "seed": config.seed, "backbone": model_digest(rm.backbone),
            "settings": rm.model_dump(mode="json", exclude={"save_steps", "score_batch_size", "output_dir"})}


def train_reward_model(config: Config, force: bool = False) -> dict:
    """Train, save (HF format) and evaluate the reward model; returns the metrics (also in metrics.json)."""
    rm, paths = config.reward_model, config.paths
    trajectories = paths.trajectories()
    if not trajectories.exists():
        raise RlffError(f"{trajectories} not found: run `rlff-esc simulate` first")
    staged = StagedFolder(paths.reward_model, reward_model_inputs(config))
    if not force and staged.done() and (staged.out / "metrics.json").exists():
        log.info("%s already holds a reward model trained on these trajectories with these settings; "
                 "skipping (use --force to retrain)", staged.out)
        return {**read_json(staged.out / "metrics.json"), "skipped": True}

    start = time.perf_counter()
    items, skipped = load_items(trajectories, paths.contexts, config.simulate.reward)
    for reason, n in skipped.items():
        log.warning("skipped %d trajectory record(s): %s", n, reason)
    train, heldout = split_by_dialogue(items, rm.heldout_fraction, config.seed)
    train_pairs = build_pairs(train, rm.margin_threshold)
    log.info("reward model: %d replies (%d train / %d held-out), %d training pairs; backbone %s, objective %s",
             len(items), len(train), len(heldout), len(train_pairs), rm.backbone, rm.objective)
    work = staged.open(force)
    fit_seconds = fit_and_save(rm, config.seed, train, work, {"reward": config.simulate.reward}, staged)
    if fit_seconds is None:
        return {"skipped": False, "written_by_another_process": True}
    train_scores = _score(work, train, rm.score_batch_size)
    metrics = {"backbone": rm.backbone, "objective": rm.objective, "reward": config.simulate.reward,
               "skipped_records": dict(skipped), "fit_seconds": round(fit_seconds, 2),
               "train": {**_describe(train, train_pairs),
                         "pairwise_accuracy": M.rounded(M.pairwise_accuracy(train_pairs, train_scores))},
               "heldout": _describe(heldout, build_pairs(heldout, rm.margin_threshold)),
               "scorers": compare_scorers(heldout, _score(work, heldout, rm.score_batch_size), rm.margin_threshold)}
    write_json(work / "metrics.json", metrics)
    out = staged.commit()

    seconds = time.perf_counter() - start
    record_stage(paths.root, config, "reward_model", seconds, path=str(out),
                 trajectories_sha256=staged.inputs["trajectories"],
                 heldout_pairwise_accuracy={k: v["pairwise_accuracy"] for k, v in metrics["scorers"].items()})
    log.info("reward model saved to %s (%.1f s); held-out metrics:\n%s", out, seconds, M.format_table(metrics))
    return {**metrics, "skipped": False}


def cross_validate(config: Config, folds: int) -> dict:
    """Out-of-fold metrics: the dialogues are dealt into ``folds`` groups, each held out once while a
    fresh model trains on the others; written to ``<reward_model>/cv_metrics.json``.

    With a few dozen contexts one held-out split gives a wide interval; here every reply is scored by a
    model that never saw its dialogue. Pairwise accuracy and within-context Kendall compare replies of
    one context, so one fold model; pooled Spearman/Kendall/AUC mix the scales of the fold models.
    """
    rm, paths = config.reward_model, config.paths
    if process_count() > 1:
        raise RlffError("cross-validation (--cv-folds) trains one fold model after another in a single "
                        "process: run it without a multi-process launch")
    items, _ = load_items(paths.trajectories(), paths.contexts, config.simulate.reward)
    cases = sorted({i.case_id for i in items})
    if not 2 <= folds <= len(cases):
        raise RlffError(f"--cv-folds {folds}: needs 2 to {len(cases)} (the number of dialogues)")
    random.Random(config.seed).shuffle(cases)
    scores: dict[int, float] = {}
    for fold in range(folds):
        held = set(cases[fold::folds])
        log.info("cross-validation fold %d/%d: %d dialogues held out", fold + 1, folds, len(held))
        with tempfile.TemporaryDirectory(prefix="rlff-rm-cv-") as folder:
            fit_and_save(rm, config.seed, [i for i in items if i.case_id not in held], Path(folder), {})
            indices = [k for k, i in enumerate(items) if i.case_id in held]
            scores.update(zip(indices, _score(Path(folder), [items[k] for k in indices], rm.score_batch_size)))
    metrics = {"folds": folds, "heldout": _describe(items, build_pairs(items, rm.margin_threshold)),
               "scorers": compare_scorers(items, [scores[k] for k in range(len(items))], rm.margin_threshold)}
    write_json(paths.reward_model / "cv_metrics.json", metrics)
    log.info("%d-fold cross-validation:\n%s", folds, M.format_table(metrics))
    return metrics
