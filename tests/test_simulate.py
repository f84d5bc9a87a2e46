"""Simulation: rewards, the trajectory store (resume, repair, shards, merge), the batched engine on the
tiny real model, and a real ``kill -9`` of ``rlff-esc simulate`` followed by a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rlff_esc.config import load_config
from rlff_esc.data.schema import Context, Profile, Turn
from rlff_esc.errors import DataError, RlffError
from rlff_esc.jsonl import repair_partial_line, write_jsonl
from rlff_esc.simulate.rewards import future_rewards
from rlff_esc.simulate.store import in_shard, merge, open_store, parse_shard

# -- rewards --------------------------------------------------------------------------------------------


def test_rewards_by_hand():
    r = future_rewards([-0.5, 0.5, 0.0, 0.75], gamma=0.5, success_threshold=0.5)
    assert r["final"] == 0.75
    assert r["improvement"] == pytest.approx(1.0 * (0.5 + 0.5) + 0.5 * (0.0 - 0.5) + 0.25 * (0.75 - 0.0))
    assert r["success"] == 1  # 0.75 > 0.5 at the last turn
    assert future_rewards([-0.5, 0.5], 0.9, 0.5)["success"] == 0  # 0.5 is not above the threshold
    assert future_rewards([0.2, -0.3], 1.0, 0.5) == {"final": -0.3, "success": 0, "improvement": pytest.approx(-0.5)}


def test_rewards_skip_invalid_scores():
    r = future_rewards([0.0, None, 0.6, None], gamma=0.5, success_threshold=0.5)
    assert r["final"] is None and r["success"] == 1
    assert r["improvement"] == pytest.approx(0.5 * 0.6)  # turn 2 compared with turn 0, the last valid
    assert future_rewards([None, -0.5, 0.5], 1.0, 0.5)["improvement"] == pytest.approx(1.0)


# -- store ----------------------------------------------------------------------------------------------

def _record(key, settings="s1"):
    return {"key": key, "settings": settings}


def test_repair_partial_last_line(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [_record("a|0|1"), _record("b|0|2")])
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"key": "c|0|3", "sett')  # what a kill in the middle of a write leaves
    assert repair_partial_line(path) == len(b'{"key": "c|0|3", "sett')
    assert path.read_bytes() == whole
    assert repair_partial_line(path) == 0
    assert set(open_store(path, "s1")) == {"a|0|1", "b|0|2"}
    path.write_bytes(b'{"key": "only-partial"')  # no complete line at all
    assert open_store(path, "s1") == {} and path.read_bytes() == b""


def test_store_refuses_duplicates_and_other_settings(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [_record("a|0|1"), _record("a|0|1")])
    with pytest.raises(DataError, match=r"t.jsonl:2: field 'key': duplicate trajectory key 'a\|0\|1'"):
        open_store(path, "s1")
    write_jsonl(path, [_record("a|0|1", settings="old")])
    with pytest.raises(RlffError, match="other settings.*--force"):
        open_store(path, "s1")


def test_shards_are_disjoint_and_cover():
    ids = [f"esconv:train:{i}#{j}" for i in range(40) for j in range(3)]
    shards = [{c for c in ids if in_shard(c, (i, 3))} for i in range(3)]
    assert set().union(*shards) == set(ids) and sum(map(len, shards)) == len(ids)
    assert all(shards)
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(RlffError, match="--shard"):
            parse_shard(bad)


def test_merge_joins_and_rejects_duplicates(tmp_path):
    a, b, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "all.jsonl"
    write_jsonl(a, [_record("x|0|1"), _record("y|0|2")])
    write_jsonl(b, [_record("z|0|3")])
    assert merge(out, [a, b]) == 3
    assert [json.loads(x)["key"] for x in out.read_text().splitlines()] == ["x|0|1", "y|0|2", "z|0|3"]
    with pytest.raises(RlffError, match="exists"):
        merge(out, [a, b])
    write_jsonl(b, [_record("z|0|3"), _record("y|0|2")])
    with pytest.raises(RlffError, match=r"duplicate trajectory key 'y\|0\|2': in .*a.jsonl:2 and again in .*b.jsonl:2"):
        merge(out, [a, b], overwrite=True)
    write_jsonl(b, [_record("z|0|3", settings="s2")])
    with pytest.raises(RlffError, match="different settings"):
        merge(out, [a, b], overwrite=True)


# -- engine and stage on the tiny model --------------------------------------------------------------

PROFILE = Profile(emotion_type="sadness", problem_type="breakup", situation="My partner left me last week.")


def _contexts(n: int) -> list[Context]:
    texts = ["I can't stop crying since she left.", "Thank you. I just don't know what to do.",
             "My friends are busy and I feel alone.", "I keep checking my phone for her messages."]
    out = []
    for i in range(n):
        history = [Turn(speaker="seeker", text="Hi, I'm having a hard time.")]
        if i % 2:
            history += [Turn(speaker="supporter", text="I'm sorry. What happened?"),
                        Turn(speaker="seeker", text=texts[i % len(texts)])]
        out.append(Context(id=f"test:train:{i}#{len(history)}", case_id=f"test:train:{i}", split="train",
                           history=history, profile=PROFILE, gold_reply="I'm here.", gold_strategy=None))
    return out


def _setup_run(tmp_path: Path, tiny_lm_dir: Path, n_contexts: int, dtype: str = "auto", **simulate) -> Path:
    run = tmp_path / "run"
    write_jsonl(run / "contexts.jsonl", (c.model_dump() for c in _contexts(n_contexts)))
    model = {"model": str(tiny_lm_dir), "batch_size": 8, "dtype": dtype}
    config = {
        "name": "t", "run_dir": str(run), "seed": 3,
        "models": {role: model for role in ("policy", "seeker", "supporter", "critic")},
        "simulate": {"candidates": 2, "horizon": 1, "max_new_tokens": 6, "candidate_max_new_tokens": 10,
                     "batch_contexts": 2, "max_resamples": 1, **simulate},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def test_simulate_stage_writes_complete_records_and_resumes(tmp_path, tiny_lm_dir, monkeypatch):
    from rlff_esc.manifest import read_manifest
    from rlff_esc.simulate import run as run_module

    config = load_config(_setup_run(tmp_path, tiny_lm_dir, 3, horizon=2))
    summary = run_module.simulate(config)
    records = [json.loads(x) for x in (config.run_path / "trajectories.jsonl").read_text().splitlines()]
    assert summary["trajectories"] == len(records) == 6 and summary["complete"]
    for r in records:
        assert r["key"] == f"{r['context_id']}|{r['candidate']}|{r['seed']}"
        assert [t["speaker"] for t in r["future"]] == ["seeker", "supporter", "seeker", "supporter", "seeker"]
        assert [c["turn"] for c in r["critic"]] == [0, 1, 2, 3] and r["horizon"] == 2
        assert all(-1 <= c["score"] <= 1 for c in r["critic"])  # logprob mode always scores
        assert set(r["rewards"]) == {"final", "success", "improvement"}
        assert r["rewards"] == future_rewards([c["score"] for c in r["critic"]], 0.9, 0.5)
        assert set(r["models"]) == {"policy", "seeker", "supporter", "critic"}
        assert "<think>" not in r["reply"] and isinstance(r["raw_candidate"], str)
    assert len({r["key"] for r in records}) == 6
    stage = read_manifest(config.run_path)["stages"]["simulate"]
    assert stage["trajectories"] == 6 and stage["seeker_stats"]["calls"] == 6 * 3 and stage["tokens"] > 0

    def no_models(*args, **kwargs):
        raise AssertionError("a finished run must not load models again")

    monkeypatch.setattr(run_module, "build_engine", no_models)
    again = run_module.simulate(config)
    assert again["written_now"] == 0 and again["trajectories"] == 6
    with pytest.raises(RlffError, match="other settings"):  # a changed horizon is not mixed in
        run_module.simulate(load_config(_setup_run(tmp_path, tiny_lm_dir, 3, horizon=1)))


def test_futures_share_their_candidate_and_extend_a_finished_run(tmp_path, tiny_lm_dir):
    """Several futures of one candidate: the same reply, other seeds after it; raising simulate.futures
    on a finished run adds futures to the candidates already there, which the reward model averages."""
    from rlff_esc.reward_model.data import load_items
    from rlff_esc.simulate.run import simulate

    config = load_config(_setup_run(tmp_path, tiny_lm_dir, 2, horizon=0))
    simulate(config)
    first = [json.loads(x) for x in (config.run_path / "trajectories.jsonl").read_text().splitlines()]
    summary = simulate(load_config(_setup_run(tmp_path, tiny_lm_dir, 2, horizon=0, futures=3)))
    assert summary["written_now"] == 8 and summary["trajectories"] == 12 and summary["candidates"] == 4
    records = [json.loads(x) for x in (config.run_path / "trajectories.jsonl").read_text().splitlines()]
    assert records[:4] == first
    by_candidate: dict = {}
    for r in records:
        by_candidate.setdefault((r["context_id"], r["candidate"]), []).append(r)
    assert len(by_candidate) == 4
    for futures in by_candidate.values():
        assert sorted(r["future_index"] for r in futures) == [0, 1, 2]
        assert len({r["raw_candidate"] for r in futures}) == 1 and len({r["seed"] for r in futures}) == 1
        assert len({r["key"] for r in futures}) == 3
    assert len({json.dumps(r["future"]) for r in records}) > 4, "futures of a candidate should differ"
    items, _ = load_items(config.run_path / "trajectories.jsonl", config.run_path / "contexts.jsonl",
                          "improvement")
    assert items and all(item.rollouts % 3 == 0 for item in items)  # (candidates with one reply share an item)


def test_batches_are_whole_contexts_also_when_resuming_with_more_futures(tmp_path, tiny_lm_dir):
    from rlff_esc.simulate.run import context_batches, make_items

    config = load_config(_setup_run(tmp_path, tiny_lm_dir, 3, futures=3))
    items = make_items(config, _contexts(3))
    assert len(items) == 3 * 2 * 3

    def contexts_of(batches):
        return [sorted({it.context.id for it in batch}) for batch in batches]

    first_run = context_batches([it for it in items if it.future == 0], 2)
    resumed = context_batches([it for it in items if it.future > 0], 2)
    assert contexts_of(first_run) == contexts_of(resumed) == [["test:train:0#1", "test:train:1#3"], ["test:train:2#1"]]
    assert [len(b) for b in resumed] == [8, 4] and [it for b in context_batches(items, 2) for it in b] == items


def test_horizon_zero_and_sample_critic(tmp_path, tiny_lm_dir):
    from rlff_esc.simulate.run import simulate

    config = load_config(_setup_run(tmp_path, tiny_lm_dir, 2, horizon=0,
                                    critic={"scoring": "sample", "samples": 3}))
    summary = simulate(config)
    records = [json.loads(x) for x in (config.run_path / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 4
    for r in records:
        assert [t["speaker"] for t in r["future"]] == ["seeker"]  # judged right after the reaction
        assert [c["turn"] for c in r["critic"]] == [0, 1]
        assert all(len(c["raw"]) == 3 for c in r["critic"])
        assert all((c["score"] is None) == (c["invalid"] == 3) for c in r["critic"])
    assert summary["critic_invalid_answers"] == sum(c["invalid"] for r in records for c in r["critic"])


def test_batched_engine_matches_one_at_a_time(tmp_path, tiny_lm_dir):
    """Batching changes speed, not results: each trajectory depends on its own seeds only (in float32;
    bfloat16 rounds differently per batch shape)."""
    from rlff_esc.simulate.run import build_engine, make_items, policy_spec

    config = load_config(_setup_run(tmp_path, tiny_lm_dir, 2, dtype="float32"))
    engine = build_engine(config, policy_spec(config))
    items = make_items(config, _contexts(2))
    together = engine.run(items)
    alone = [engine.run([it])[0] for it in items]
    for a, b in zip(together, alone):
        assert a["raw_candidate"] == b["raw_candidate"] and a["future"] == b["future"]
        assert [c["score"] for c in a["critic"]] == pytest.approx([c["score"] for c in b["critic"]], abs=1e-4)


class OutOfRoleWhere:
    """The seeker's backend, except that every turn of a dialogue containing ``marker`` comes back out of
    role (so that it is re-sampled until the agent gives up)."""

    def __init__(self, backend, marker: str):
        self.backend, self.marker, self.name = backend, marker, backend.name

    def generate(self, requests):
        from rlff_esc.llm.base import Generation

        return [Generation("Supporter: how can I help?") if any(self.marker in m["content"] for m in r.messages)
                else g for r, g in zip(requests, self.backend.generate(requests))]


def test_engine_records_each_trajectorys_seeker_resamples(tmp_path, tiny_lm_dir):
    from rlff_esc.simulate.run import build_engine, make_items, policy_spec

    config = load_config(_setup_run(tmp_path, tiny_lm_dir, 2, horizon=1, max_resamples=2))
    engine = build_engine(config, policy_spec(config))
    contexts = _contexts(2)
    engine.seeker.backend = OutOfRoleWhere(engine.seeker.backend, contexts[1].history[-1].text)
    records = engine.run(make_items(config, contexts))
    resamples = {(r["context_id"], r["candidate"]): r["resamples"] for r in records}
    # context 1: both seeker turns (horizon 1 + the reaction) re-sampled twice each; context 0 untouched
    assert resamples == {(contexts[0].id, 0): 0, (contexts[0].id, 1): 0,
                         (contexts[1].id, 0): 4, (contexts[1].id, 1): 4}


def test_shards_then_merge_equal_one_run(tmp_path, tiny_lm_dir):
    from rlff_esc.simulate.run import make_items, simulate

    config = load_config(_setup_run(tmp_path, tiny_lm_dir, 4, horizon=0))
    files = []
    for i in range(2):
        summary = simulate(config, shard=f"{i}/2")
        files.append(Path(summary["file"]))
    out = config.run_path / "trajectories.jsonl"
    assert merge(out, files) == 8
    assert sorted(_keys(out)) == sorted(it.key for it in make_items(config, _contexts(4)))


def test_kill_9_and_restart_loses_and_duplicates_nothing(tmp_path, tiny_lm_dir):
    """Really run the CLI, SIGKILL it after its first batch is on disk, leave a torn last line as a kill
    during a write would, start again, and check every key is there exactly once."""
    config_path = _setup_run(tmp_path, tiny_lm_dir, 8, batch_contexts=1)
    out = tmp_path / "run" / "trajectories.jsonl"
    command = [sys.executable, "-m", "rlff_esc", "simulate", "-c", str(config_path)]
    env = {**os.environ, "RLFF_ESC_LOG": "WARNING", "OMP_NUM_THREADS": "1"}  # a tiny model gains nothing from threads
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (out.exists() and out.stat().st_size > 0):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no batch was written in time"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = _keys(out)
    assert 0 < len(written) < 16, "the kill must land mid-run"
    with open(out, "ab") as f:
        f.write(b'{"key": "test:train:7#3|1|12345", "context_id": "test:tr')  # a torn write
    done = subprocess.run(command, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    keys = _keys(out)  # every line parses: the torn one was cut away
    assert len(keys) == len(set(keys)) == 16
    assert keys[:len(written)] == written  # what was on disk stayed, nothing was redone
    expected = {f"test:train:{i}#{1 if i % 2 == 0 else 3}|{k}" for i in range(8) for k in range(2)}
    assert {k.rsplit("|", 1)[0] for k in keys} == expected


def test_a_changed_warm_up_or_critic_is_refused_by_name_and_redone_with_force(tmp_path, tiny_lm_dir):
    """Trajectories stand by the weights that made them: retraining the warm-up (same path, other
    weights) or the learned critic makes simulate refuse the old file, naming the input that changed."""
    import shutil

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from rlff_esc.agents.learned_critic import LearnedCritic, Mapping
    from rlff_esc.simulate.run import simulate

    warm_up, critic = tmp_path / "run" / "policy_sft", tmp_path / "run" / "critic"
    shutil.copytree(tiny_lm_dir, warm_up)
    LearnedCritic(np.zeros(768), 0.0, Mapping(sigma=1.0, solved_from=2.0)).save(critic)
    config = load_config(_setup_run(tmp_path, tiny_lm_dir, 1, horizon=0, candidates=1, policy_path=str(warm_up),
                                    critic={"kind": "learned"}))
    first = simulate(config)
    assert first["written_now"] == 1

    model = AutoModelForCausalLM.from_pretrained(warm_up)  # the warm-up retrained: same folder, new weights
    with torch.no_grad():
        model.lm_head.weight.mul_(1.5)
    model.save_pretrained(warm_up)
    with pytest.raises(RlffError, match=r"other settings \(changed: models\.policy\.model\.weights\).*--force"):
        simulate(config)
    again = simulate(config, force=True)
    assert again["written_now"] == 1 and again["settings"] != first["settings"]

    LearnedCritic(np.zeros(768), 0.3, Mapping(sigma=1.0, solved_from=2.0)).save(critic)  # a retrained critic
    with pytest.raises(RlffError, match=r"changed: models\.critic\.learned_weights\)"):
        simulate(config)
