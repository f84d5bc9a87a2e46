"""A PNG of the GRPO training curves: total and per-function rewards (and the raw reward-model score),
and format compliance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rlff_esc.policy.logs import read_log  # noqa: E402


def plot_training_curves(log_path: Path, png_path: Path) -> Path | None:
    """Draw reward curves (left) and format compliance (right) from ``train_log.jsonl``."""
    rows = [r for r in read_log(log_path) if "reward" in r]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(steps, [r["reward"] for r in rows], label="total (weighted)", linewidth=2)
    for key in sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")}):
        left.plot(steps, [r.get(key) for r in rows], label=key.split("/")[1], linestyle="--")
    if any("reward_model/raw_mean" in r for r in rows):  # the standardized RM reward hides its level
        left.plot(steps, [r.get("reward_model/raw_mean") for r in rows], label="reward model, raw score", linestyle=":")
    left.set(title="GRPO reward", xlabel="step", ylabel="mean reward")
    left.legend(fontsize=8)
    right.plot(steps, [r.get("format/compliance") for r in rows], color="tab:green", marker="o", markersize=3)
    right.set(title="format compliance (training samples)", xlabel="step", ylabel="share well-formed", ylim=(-0.02, 1.02))
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
