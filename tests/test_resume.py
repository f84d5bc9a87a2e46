"""Runs that can be interrupted and started again: the whole pipeline on tiny models, run by the real
CLI in subprocesses. A finished run started again loads no model and changes no file; a run killed
(SIGKILL) in the middle of SFT, reward-model training, GRPO and evaluation, each time started again
with the same command, continues where it stopped and ends with the outputs of a run never killed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from critic_fixtures import write_esconv

ENV = {**os.environ, "RLFF_ESC_LOG": "WARNING", "OMP_NUM_THREADS": "1"}  # one thread: the same arithmetic in every run


def _write_config(folder: Path, data: Path, tiny: Path) -> Path:
    model = {"model": str(tiny), "batch_size": 8}
    run = folder / "run"
    config = {
        "name": "resume", "run_dir": str(run), "seed": 5,
        "data": {"path": str(data), "split": "seed13", "max_contexts": {"train": 4, "valid": 2, "test": 2}},
        "models": {role: model for role in ("policy", "seeker", "supporter", "critic", "judge")},
        "simulate": {"candidates": 2, "horizon": 0, "max_new_tokens": 6, "candidate_max_new_tokens": 10,
                     "batch_contexts": 2, "max_resamples": 0, "policy_path": str(run / "policy_sft"),
                     "critic": {"kind": "learned"}},
        "reward_model": {"backbone": str(tiny), "objective": "pointwise", "heldout_fraction": 0.25, "epochs": 8,
                         "batch_size": 1, "max_length": 64, "save_steps": 3},
        "policy": {"base_model": str(tiny), "max_history_turns": 2, "lora": {"r": 4, "alpha": 8},
                   "sft": {"max_steps": 16, "batch_size": 2, "max_examples": 8, "max_length": 128, "save_steps": 2,
                           "max_target_tokens": 64},
                   "grpo": {"max_steps": 8, "group_size": 2, "per_device_batch_size": 2, "max_completion_length": 8,
                            "save_steps": 2, "check_contexts": 2, "learning_rate": 1e-3}},
        "evaluate": {"systems": ["base", "sft", "rlff_esc"], "max_cases": 4, "max_turns": 1, "batch_cases": 1,
                     "max_new_tokens": 8, "reasoning_max_new_tokens": 8, "seeker_max_new_tokens": 8,
                     "quality_max_contexts": 2, "judge": False, "bootstrap_samples": 100, "safety": False,
                     "critic": {"kind": "learned"}},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(config: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "rlff_esc", "run", "-c", str(config)], env=ENV,
                          capture_output=True, timeout=900)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done


def _run_until(config: Path, reached: Callable[[], bool], stage_output: Path) -> None:
    """Start ``rlff-esc run``, SIGKILL it as soon as ``reached()``, and check the stage was cut short."""
    process = subprocess.Popen([sys.executable, "-m", "rlff_esc", "run", "-c", str(config)], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not reached():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run never reached the point to kill it at"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (stage_output / "stage.json").exists(), "the kill must land before the stage finishes"


def _snapshot(run: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(run)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(run.rglob("*")) if p.is_file()}


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def _assert_same_weights(a: Path, b: Path) -> None:
    import torch

    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.allclose(wa[name], wb[name], atol=1e-6), f"{a.name}: {name} differs"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_esconv(tmp_path_factory.mktemp("esconv"), {"train": 20, "valid": 4, "test": 4})


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir, tiny_lm_dir) -> Path:
    """A run never interrupted."""
    config = _write_config(tmp_path_factory.mktemp("reference"), data_dir, tiny_lm_dir)
    _run(config)
    return config


@pytest.mark.slow
def test_a_finished_run_started_again_loads_no_model_and_changes_no_file(reference, monkeypatch):
    import transformers
    from typer.testing import CliRunner

    from rlff_esc.agents.learned_critic import LearnedCritic
    from rlff_esc.cli import app
    from rlff_esc.llm.local import LocalBackend

    def no_model(*args, **kwargs):
        raise AssertionError("a finished run must not load a model")

    for owner, name in ((transformers.PreTrainedModel, "from_pretrained"), (LocalBackend, "__init__"),
                        (LearnedCritic, "load"), (transformers.AutoTokenizer, "from_pretrained")):
        monkeypatch.setattr(owner, name, no_model)
    run = reference.parent / "run"
    before = _snapshot(run)
    assert {"data.stage.json", "policy_sft/stage.json", "critic/stage.json", "reward_model/stage.json",
            "policy/stage.json", "eval/stage.json", "trajectories.jsonl", "report.md"} <= set(before)
    result = CliRunner().invoke(app, ["run", "-c", str(reference)])
    assert result.exit_code == 0, result.output
    assert _snapshot(run) == before


@pytest.mark.slow
def test_killed_in_each_training_stage_and_in_evaluation_continues_to_the_same_outputs(
        tmp_path, reference, data_dir, tiny_lm_dir):
    config = _write_config(tmp_path, data_dir, tiny_lm_dir)
    run, ref = tmp_path / "run", reference.parent / "run"

    def checkpoint(folder: str, step: int) -> Callable[[], bool]:
        return lambda: (run / f"{folder}.partial" / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").exists()

    _run_until(config, checkpoint("policy_sft", 4), run / "policy_sft")
    _run_until(config, checkpoint("reward_model", 3), run / "reward_model")
    _run_until(config, checkpoint("policy", 2), run / "policy")
    evaluated = run / "eval" / "base"
    _run_until(config, lambda: any(evaluated.glob("transcripts.*.partial.jsonl")) and
               any(p.stat().st_size for p in evaluated.glob("transcripts.*.partial.jsonl")), run / "eval")
    partial = next(evaluated.glob("transcripts.*.partial.jsonl"))
    written = [r["case_id"] for r in _lines(partial) if r]
    assert 1 <= len(written) < 4
    _run(config)

    manifest = json.loads((run / "manifest.json").read_text())["stages"]
    assert manifest["policy_sft"]["resumed_at_step"] >= 4
    assert manifest["policy_grpo"]["resumed_at_step"] >= 2
    for folder in ("policy_sft", "reward_model", "policy"):
        _assert_same_weights(run / folder, ref / folder)
        assert not (run / f"{folder}.partial").exists()

    # Resumed weights equal the reference's to 1e-6, not bit for bit, and on the tiny random model (nearly
    # flat next-token distributions) such a difference can change a sampled token. So what the trained
    # warm-up wrote (the trajectories, the sft and rlff_esc systems) is compared by its shape, and the
    # base model's evaluation, whose weights are untouched, by its text.
    def shape(records):
        return [(r.get("key", r.get("case_id", r.get("context_id"))), len(r.get("future", [])),
                 len(r.get("critic", []))) for r in records]

    assert shape(_lines(run / "trajectories.jsonl")) == shape(_lines(ref / "trajectories.jsonl"))
    for system in ("base", "sft", "rlff_esc"):
        for name in ("transcripts.jsonl", "replies.jsonl"):
            ours, theirs = _lines(run / "eval" / system / name), _lines(ref / "eval" / system / name)
            if system == "base":
                assert [r.get("turns", r.get("reply")) for r in ours] == [r.get("turns", r.get("reply")) for r in theirs]
            else:
                assert [r.get("case_id", r.get("context_id")) for r in ours] == \
                    [r.get("case_id", r.get("context_id")) for r in theirs]
    assert [r["case_id"] for r in _lines(evaluated / "transcripts.jsonl")][:len(written)] == written
    assert not list(evaluated.glob("*.partial.jsonl"))
