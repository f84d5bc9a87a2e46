"""The data-grounded critic: predicts the seeker's reported improvement from the dialogue so far.

Why: a 135M chat model asked PPDPP's question has no measurable signal on ESConv (README,
"The critic"), while ESConv's seekers reported their emotion intensity before and after each chat. So
this critic learns, from those reports, how much better the seeker feels.

Model. Each seeker turn is embedded with frozen MiniLM (cached, :mod:`rlff_esc.agents.embeddings`);
a (possibly partial) dialogue is described by two pooled vectors: the mean over all its seeker turns
(where the conversation has been) and the mean over the last three (how the seeker sounds now).
Ridge regression maps them to the predicted improvement ŷ in intensity points (initial − final).
No length or turn-count feature is used: seeker-turn length alone separates failed from kept ESConv
conversations (AUC ≈ 0.70) and dialogue length would make every short simulated dialogue look bad.

Training data. ESConv train dialogues with both intensities, and the training half of the failed
conversations (:func:`split_failed`; the other half is held out for validation) labelled with their
reported improvement, or 0 where they have no survey (they were dropped because the last in-chat
feedback was ≤ 2), weighted ``FAILED_WEIGHT`` times. Partial dialogues are examples too: the prefix
with the first k of K seeker turns is labelled (k / K) × improvement, i.e. we assume the reported
change accrues evenly over the chat, so that the critic can judge mid-conversation and sees progress.
Choices (features, α = 3, failed weight 3) were made by 5-fold grouped cross-validation on train.

Four-way mapping (PPDPP). The improvement is taken as z ~ Normal(ŷ, σ²), σ the residual standard
deviation on complete training dialogues, and read on the intensity scale: z < −0.5 → *feels worse*
(intensity rose), −0.5 ≤ z < 0.5 → *feels the same*, 0.5 ≤ z < t → *feels better*, z ≥ t → *issue
solved*. ``Judgement.distribution`` holds these four probabilities and ``score`` their expected
mapped value (−1 / −0.5 / +0.5 / +1), so it lies in [−1, 1]. The one free threshold t is calibrated
on the training data: the score of a complete ESConv train dialogue passes the success threshold
(0.5) exactly as often as train seekers reported a drop of at least ``CALIBRATION_DROP`` = 2 points
(63% on the PPDPP train split), so "success" means what a two-point drop means to people.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rlff_esc.agents.base import OPTION_VALUES, OPTIONS, Dialogue, Judgement
from rlff_esc.agents.embeddings import Encoder
from rlff_esc.config import Config, CriticSection
from rlff_esc.data.schema import Case, Turn
from rlff_esc.errors import RlffError

log = logging.getLogger(__name__)

LAST_TURNS = 3  # "how the seeker sounds now": mean of the last three seeker turns
PREFIX_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # partial dialogues used for training
FAILED_WEIGHT = 3.0  # ~50 failed vs ~900 kept dialogues: give the non-improvers a voice
CALIBRATION_DROP = 2.0  # success as often as seekers reported a drop of at least this many points
SAME_BAND = 0.5  # |z| < 0.5 intensity points → "feels the same"
FORMAT_VERSION = 1


def improvement(case: Case) -> float | None:
    """Reported improvement (initial − final intensity), or None without both reports."""
    s = case.survey
    if "initial_emotion_intensity" in s and "final_emotion_intensity" in s:
        return s["initial_emotion_intensity"] - s["final_emotion_intensity"]
    return None


def split_failed(failed: list[Case]) -> tuple[list[Case], list[Case]]:
    """Failed conversations: even array positions train the critic, odd ones are held out for
    validation. Fixed and documented so every critic is validated on the same unseen half."""
    return failed[0::2], failed[1::2]


def failed_path(config: Config) -> Path | None:
    """The failed ESConv conversations next to the configured ESConv folder, if present."""
    if config.data.dataset != "esconv" or config.data.path == "hub":
        return None
    base = config.resolve(config.data.path)
    path = (base if base.is_dir() else base.parent) / "failed" / "FailedESConv-part-a.json"
    return path if path.exists() else None


def seeker_texts(turns: list[Turn]) -> list[str]:
    return [t.text for t in turns if t.speaker == "seeker" and t.text.strip()]


def pool(vectors: np.ndarray) -> np.ndarray:
    """Features of one dialogue from its seeker-turn embeddings (zeros when there is none yet)."""
    dim = vectors.shape[1]
    if len(vectors) == 0:
        return np.zeros(2 * dim, dtype=np.float32)
    return np.concatenate([vectors.mean(0), vectors[-LAST_TURNS:].mean(0)])


@dataclass
class Mapping:
    """Predicted improvement → the four PPDPP answers (see the module docstring)."""

    sigma: float
    solved_from: float
    same_band: float = SAME_BAND

    def distribution(self, predicted: float) -> dict[str, float]:
        cdf = [0.5 * (1 + math.erf((edge - predicted) / (self.sigma * math.sqrt(2))))
               for edge in (-self.same_band, self.same_band, self.solved_from)]
        probs = [cdf[0], cdf[1] - cdf[0], cdf[2] - cdf[1], 1 - cdf[2]]
        return dict(zip(OPTIONS, probs))

    def score(self, predicted: float) -> float:
        return sum(OPTION_VALUES[o] * p for o, p in self.distribution(predicted).items())


def calibrate_solved_from(predicted_at_end: np.ndarray, sigma: float, share: float,
                          success_threshold: float = 0.5) -> float:
    """The threshold t at which ``share`` of the given predictions score above ``success_threshold``.

    The score rises with ŷ, so the prediction at the (1 − share) quantile must score exactly the
    threshold; the score falls as t rises, so t is found by bisection."""
    pivot = float(np.quantile(predicted_at_end, 1 - share))
    lo, hi = SAME_BAND, SAME_BAND + 20 * sigma + 10
    for _ in range(80):
        mid = (lo + hi) / 2
        if Mapping(sigma, mid).score(pivot) > success_threshold:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class LearnedCritic:
    """Implements :class:`rlff_esc.agents.base.Critic` over a ridge head on MiniLM embeddings."""

    def __init__(self, coef: np.ndarray, intercept: float, mapping: Mapping, *,
                 backbone: str = "embedded:minilm", info: dict | None = None):
        self.coef, self.intercept, self.mapping = np.asarray(coef, dtype=np.float32), float(intercept), mapping
        self.backbone = backbone
        self.info = info or {}
        # Reads the shared cache (ESConv turns judged in validation are there) but never writes
        # generated text back to it.
        self.encoder = Encoder(backbone, autosave=False)
        self.name = f"learned:{backbone.removeprefix('embedded:')}-ridge"

    def features(self, turn_lists: list[list[Turn]], encoder: Encoder | None = None) -> np.ndarray:
        encoder = encoder or self.encoder
        texts = [seeker_texts(turns) for turns in turn_lists]
        flat = encoder.encode([t for ts in texts for t in ts])
        rows, start = [], 0
        for ts in texts:
            rows.append(pool(flat[start:start + len(ts)] if ts else np.zeros((0, flat.shape[1] or 384))))
            start += len(ts)
        return np.stack(rows) if rows else np.zeros((0, 2 * 384), dtype=np.float32)

    def predict_improvement(self, dialogues: list[Dialogue], encoder: Encoder | None = None) -> np.ndarray:
        if not dialogues:
            return np.zeros(0)
        return self.features([d.turns for d in dialogues], encoder) @ self.coef + self.intercept

    def judge(self, dialogues: list[Dialogue]) -> list[Judgement]:
        return [Judgement(score=self.mapping.score(float(y)), distribution=self.mapping.distribution(float(y)))
                for y in self.predict_improvement(dialogues)]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "ridge.npz", coef=self.coef, intercept=np.array(self.intercept))
        meta = {"format_version": FORMAT_VERSION, "backbone": self.backbone, "mapping": asdict(self.mapping),
                "features": f"mean of all seeker turns + mean of the last {LAST_TURNS} (MiniLM)", **self.info}
        (path / "critic.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LearnedCritic":
        path = Path(path)
        meta_file, weights = path / "critic.json", path / "ridge.npz"
        if not meta_file.exists() or not weights.exists():
            raise RlffError(f"{path}: not a learned critic folder (expected critic.json and ridge.npz); "
                            "train one with `rlff-esc agents train-critic`")
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise RlffError(f"{meta_file}: format_version {meta.get('format_version')!r}, expected "
                            f"{FORMAT_VERSION}; retrain with `rlff-esc agents train-critic --force`")
        with np.load(weights) as w:
            coef, intercept = w["coef"], float(w["intercept"])
        info = {k: v for k, v in meta.items() if k not in ("format_version", "backbone", "mapping", "features")}
        return cls(coef, intercept, Mapping(**meta["mapping"]), backbone=meta["backbone"], info=info)


def training_rows(cases: list[Case], labels: list[float]):
    """Prefixes of each dialogue at ``PREFIX_FRACTIONS`` of its seeker turns, with their targets;
    returns (turn lists, targets, is_complete, index of the source case)."""
    turn_lists, targets, complete, source = [], [], [], []
    for index, (case, label) in enumerate(zip(cases, labels)):
        seeker_at = [i for i, t in enumerate(case.turns) if t.speaker == "seeker"]
        if not seeker_at:
            continue
        for f in PREFIX_FRACTIONS:
            k = max(1, round(f * len(seeker_at)))
            end = len(case.turns) if f == 1.0 else seeker_at[k - 1] + 1
            turn_lists.append(case.turns[:end])
            targets.append(k / len(seeker_at) * label)
            complete.append(f == 1.0)
            source.append(index)
    return turn_lists, np.array(targets, dtype=np.float64), np.array(complete), np.array(source)


def fit_learned_critic(cases: list[Case], failed: list[Case], *, alpha: float = 3.0,
                       backbone: str = "embedded:minilm", encoder: Encoder | None = None,
                       success_threshold: float = 0.5) -> LearnedCritic:
    """Fit on ESConv dialogues with both intensity reports plus failed (non-improving) ones."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge

    kept = [c for c in cases if improvement(c) is not None]
    if len(kept) < 10:
        raise RlffError(f"the learned critic needs ESConv dialogues with both intensity reports; found {len(kept)}")
    failed_labels = [improvement(c) if improvement(c) is not None else 0.0 for c in failed]
    turn_lists, y, complete, source = training_rows(kept + failed, [improvement(c) for c in kept] + failed_labels)
    encoder = encoder or Encoder(backbone)
    critic = LearnedCritic(np.zeros(1), 0.0, Mapping(1.0, 2.5), backbone=backbone)
    X = critic.features(turn_lists, encoder)
    encoder.save()
    ridge = Ridge(alpha=alpha).fit(X, y, sample_weight=np.where(source >= len(kept), FAILED_WEIGHT, 1.0))
    predicted = ridge.predict(X)
    sigma = float(np.std(y[complete] - predicted[complete]))
    kept_end = predicted[complete & (source < len(kept))]
    share = float(np.mean([improvement(c) >= CALIBRATION_DROP for c in kept]))
    solved_from = calibrate_solved_from(kept_end, sigma, share, success_threshold)
    info = {"alpha": alpha, "failed_weight": FAILED_WEIGHT, "train_dialogues": len(kept), "train_failed": len(failed), "rows": len(y),
            "calibration": {"drop": CALIBRATION_DROP, "share": round(share, 4)},
            "train_spearman_complete": round(float(spearmanr(predicted[complete], y[complete])[0]), 4)}
    return LearnedCritic(ridge.coef_, float(ridge.intercept_), Mapping(sigma, solved_from),
                         backbone=backbone, info=info)


def critic_dir(config: Config, critic_cfg: CriticSection | None = None) -> Path:
    return config.paths.learned_critic(critic_cfg)


def train_learned_critic(config: Config, force: bool = False) -> Path:
    """Train on the configured dataset's train split (+ the training half of the failed
    conversations), save to ``critic.learned_path`` or ``<run>/critic/``, record stage "critic".
    Skips when the folder already holds a critic trained on the same inputs."""
    from rlff_esc.data.esconv import read_raw
    from rlff_esc.data.prepare import data_inputs, load_cases
    from rlff_esc.manifest import record_stage
    from rlff_esc.stages import StagedFolder, file_digest, model_digest

    start = time.perf_counter()
    critic_cfg = config.simulate.critic
    fpath = failed_path(config)
    staged = StagedFolder(critic_dir(config, critic_cfg), {
        "data": data_inputs(config), "failed": file_digest(fpath) if fpath else None,
        "alpha": critic_cfg.ridge_alpha, "backbone": model_digest(critic_cfg.learned_backbone),
        "format_version": FORMAT_VERSION, "success_threshold": critic_cfg.success_threshold})
    if not force and staged.done():
        log.info("learned critic in %s is up to date (same inputs); skipping", staged.out)
        return staged.out
    result, _ = load_cases(config)
    train = [c for c in result.cases if c.split == "train"]
    failed_train = split_failed(read_raw(fpath).cases)[0] if fpath else []
    if not fpath:
        log.warning("no failed ESConv conversations found next to data.path; training without negatives")
    log.info("training the learned critic on %d train dialogues + %d failed ones", len(train), len(failed_train))
    encoder = Encoder(critic_cfg.learned_backbone)
    critic = fit_learned_critic(train, failed_train, alpha=critic_cfg.ridge_alpha,
                                backbone=critic_cfg.learned_backbone, encoder=encoder,
                                success_threshold=critic_cfg.success_threshold)
    critic.save(staged.open(force))
    out = staged.commit()
    seconds = time.perf_counter() - start
    record_stage(config.run_path, config, "critic", seconds, path=str(out), **critic.info,
                 sigma=round(critic.mapping.sigma, 4), solved_from=round(critic.mapping.solved_from, 4))
    log.info("learned critic saved to %s in %.1f s", out, seconds)
    return out
