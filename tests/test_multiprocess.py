"""Training stages under a two-process ``accelerate launch`` on the CPU (gloo): the path a multi-GPU
run takes, with the same trainers, run-directory folders and manifest. Each process trains; the main
one writes the stage's folder and its manifest entry, once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.rm_fixtures import write_fixture_run
from tests.test_policy import make_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*command: str, cwd: Path) -> str:
    """``accelerate launch`` of ``rlff-esc <command>`` on two CPU processes; returns its output."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(free_port()), "-m", "rlff_esc", *command],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result.stdout + result.stderr


def stage_record(run: Path, stage: str) -> dict:
    return json.loads((run / "manifest.json").read_text())["stages"][stage]


@pytest.mark.slow
def test_reward_model_sft_and_grpo_train_on_two_processes(tmp_path, tiny_lm_dir):
    rm_run = write_fixture_run(tmp_path / "rm-run", contexts=16)
    rm_config = tmp_path / "rm.yaml"
    rm_config.write_text(yaml.safe_dump({"run_dir": str(rm_run), "seed": 13, "reward_model": {
        "epochs": 1, "batch_size": 4, "max_length": 64, "train_layers": 1, "heldout_fraction": 0.25}}))
    launch("rm", "train", "-c", str(rm_config), cwd=tmp_path)
    assert (rm_run / "reward_model" / "metrics.json").exists() and not (rm_run / "reward_model.partial").exists()
    assert stage_record(rm_run, "reward_model")["processes"] == 2

    config = make_config(tmp_path, str(tiny_lm_dir), rm_path=str(rm_run / "reward_model"),
                         grpo={"max_steps": 2, "per_device_batch_size": 2})
    run, config_file = config.run_path, str(tmp_path / "config.yaml")
    launch("policy", "sft", "-c", config_file, cwd=tmp_path)
    sft = stage_record(run, "policy_sft")
    assert sft["processes"] == 2 and sft["steps"] == 2
    assert not (run / "policy_sft" / "adapter_config.json").exists()  # merged full weights, in float32
    assert json.loads((run / "policy_sft" / "config.json").read_text())["dtype"] == "float32"

    launch("policy", "train", "-c", config_file, cwd=tmp_path)
    grpo = stage_record(run, "policy_grpo")
    assert grpo["processes"] == 2 and grpo["steps"] == 2 and grpo["check"]["after"]["n"] == 2
    log = [json.loads(line) for line in (run / "policy" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "reward" in r] == [1, 2]  # one line a step: only the main process logs
    assert len(list((run / "policy" / "tensorboard").iterdir())) == 1
