"""Stage completion: content fingerprints, the staged output folder, and a manifest that several
processes record into at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlff_esc.stages import MARKER, StagedFolder, changed_inputs, folder_digest, read_marker

RECORD = """
import sys
from rlff_esc.config import Config
from rlff_esc.manifest import record_stage
config = Config(run_dir=sys.argv[1])
for k in range(int(sys.argv[3])):
    record_stage(config.run_path, config, f"shard-{sys.argv[2]}-{k}", 0.0, k=k)
"""


def test_two_processes_recording_one_manifest_lose_no_entry(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    processes = [subprocess.Popen([sys.executable, "-c", RECORD, str(tmp_path), str(i), "25"], env=env,
                                  stderr=subprocess.PIPE) for i in range(2)]
    for p in processes:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    stages = json.loads((tmp_path / "manifest.json").read_text())["stages"]
    assert set(stages) == {f"shard-{i}-{k}" for i in range(2) for k in range(25)}
    assert not list(tmp_path.glob(".manifest.json.*.tmp"))


def test_folder_digest_follows_content_not_time_and_skips_records(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}")
    first = folder_digest(tmp_path)
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))  # touched, same bytes
    (tmp_path / "train_log.jsonl").write_text('{"step": 1}\n')  # records of its making
    (tmp_path / MARKER).write_text("{}")
    assert folder_digest(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert folder_digest(tmp_path) != first
    assert folder_digest(tmp_path / "missing") is None


def test_changed_inputs_names_dotted_paths():
    old = {"models": {"policy": {"weights": "a"}, "seeker": {"weights": "b"}}, "seed": 1}
    new = {"models": {"policy": {"weights": "c"}, "seeker": {"weights": "b"}}, "seed": 1, "extra": 2}
    assert changed_inputs(old, new) == ["extra", "models.policy.weights"]
    assert changed_inputs(None, new) == ["(all inputs)"]


def test_staged_folder_keeps_the_old_output_until_the_new_one_is_complete(tmp_path):
    out = tmp_path / "model"
    first = StagedFolder(out, {"v": 1})
    (first.open() / "weights").write_text("one")
    first.commit(steps=1)
    assert StagedFolder(out, {"v": 1}).done() and read_marker(out / MARKER)["steps"] == 1

    second = StagedFolder(out, {"v": 2})
    assert not second.done()
    work = second.open()
    (work / "weights").write_text("two")
    (work / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    assert (out / "weights").read_text() == "one"  # a kill now leaves the old output whole
    assert StagedFolder(out, {"v": 2}).open() == work and (work / "checkpoints").exists()  # same inputs: kept
    assert not (StagedFolder(out, {"v": 3}).open() / "weights").exists()  # other inputs: started over

    third = StagedFolder(out, {"v": 3})
    (third.open() / "weights").write_text("three")
    third.commit()
    assert (out / "weights").read_text() == "three" and not third.partial.exists()
    assert not (out / "checkpoints").exists()


def test_a_swap_cut_short_by_a_kill_is_finished_by_the_next_run(tmp_path):
    out = tmp_path / "model"
    old = StagedFolder(out, {"v": 1})
    (old.open() / "weights").write_text("one")
    old.commit()
    new = StagedFolder(out, {"v": 2})
    (new.open() / "weights").write_text("two")
    from rlff_esc.stages import mark_done

    mark_done(new.partial / MARKER, new.key, new.inputs)
    os.replace(out, out.with_name("model.old"))  # killed between the two renames
    assert StagedFolder(out, {"v": 2}).done()
    assert (out / "weights").read_text() == "two" and not out.with_name("model.old").exists()


def test_a_torn_marker_counts_as_not_done(tmp_path):
    (tmp_path / MARKER).write_text('{"fingerprint": "ab')
    assert read_marker(tmp_path / MARKER) is None


@pytest.mark.parametrize("override, message", [
    ("seed.x=1", "--set seed.x=1: seed is a single value, not a section"),
    ("policy.grpo.max_steps.y=2", "policy.grpo.max_steps is a single value"),
])
def test_set_with_a_sub_key_on_a_scalar_is_a_clear_error(tmp_path, override, message):
    from rlff_esc.config import load_config
    from rlff_esc.errors import ConfigError

    (tmp_path / "c.yaml").write_text("seed: 3\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "c.yaml", [override])
