"""Policy training: dry-run validation, warm-up targets, reward functions, and real TRL SFT/GRPO runs
on the tiny model (fast; it answers garbage, which exercises the lenient parser and the reward floor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rlff_esc.config import load_config
from rlff_esc.data.schema import Case, Turn
from rlff_esc.data.contexts import build_contexts
from rlff_esc.errors import ConfigError, RlffError
from rlff_esc.jsonl import write_jsonl
from rlff_esc.policy.check import compare_checks
from rlff_esc.policy.dataset import fits_budget, grpo_prompts, sft_examples, warmup_target
from rlff_esc.policy.plan import validate_plan
from rlff_esc.policy.reasoning import parse, system_prompt
from rlff_esc.policy.rewards import (FormatReward, RewardModelReward, build_reward_functions, completion_text,
                                     repetition_penalty)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SEEKER = ["I lost my job and I feel useless.", "My partner left me last month.", "I can't sleep before exams.",
          "My mother is ill and I am scared.", "I feel alone in this new city."]
SUPPORTER = ["I'm so sorry, that sounds really hard.", "How long have you been feeling this way?",
             "It makes sense that you feel scared.", "Have you thought about talking to a friend?"]


def write_run(run: Path) -> Path:
    """cases.jsonl and contexts.jsonl for 6 short dialogues (4 train, 2 valid)."""
    cases = []
    for i in range(6):
        turns = []
        for t in range(3):
            turns.append(Turn(speaker="seeker", text=SEEKER[(i + t) % len(SEEKER)]))
            turns.append(Turn(speaker="supporter", text=SUPPORTER[(i + t) % len(SUPPORTER)],
                              strategy=["Question", "Reflection of feelings", "Providing Suggestions"][t]))
        cases.append(Case(id=f"esconv:{i}", dataset="esconv", split="train" if i < 4 else "valid",
                          emotion_type="sadness", problem_type="Job crisis", situation=SEEKER[i % len(SEEKER)], turns=turns))
    write_jsonl(run / "cases.jsonl", (c.model_dump() for c in cases))
    write_jsonl(run / "contexts.jsonl", (x.model_dump() for c in cases for x in build_contexts(c)))
    return run


def make_config(tmp_path: Path, model: str, rm_path: str | None = None, **policy):
    run = write_run(tmp_path / "run")
    raw = {"run_dir": str(run), "data": {"path": str(tmp_path)}, "policy": {
        "base_model": model, "max_history_turns": 3, "reward_model_path": rm_path,
        "lora": {"r": 4, "alpha": 8},
        "sft": {"max_steps": 2, "batch_size": 4, "max_examples": 8, "max_length": 256, "max_target_tokens": 128},
        "grpo": {"max_steps": 2, "group_size": 2, "per_device_batch_size": 4, "max_completion_length": 12,
                 "save_steps": 1, "check_contexts": 2, "learning_rate": 1e-3,
                 "reward_weights": {"reward_model": 1.0, "format": 0.5, "repetition": 0.1}}}}
    for key, value in policy.items():
        raw["policy"].setdefault(key, {}).update(value) if isinstance(value, dict) else raw["policy"].update({key: value})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


# -- dry run -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["demo.yaml", "paper-qwen2.5-7b.yaml", "paper-llama3.1-8b.yaml",
                                  "ablation-immediate.yaml", "ablation-no-reasoning.yaml", "policy-cpu.yaml",
                                  "benchmark-cpu.yaml", "benchmark-cpu-immediate.yaml",
                                  "benchmark-cpu-no-reasoning.yaml"])
def test_shipped_configs_validate(name, esconv_dir):
    lines = validate_plan(load_config(CONFIGS / name))
    assert any(line.startswith("policy grpo:") for line in lines)


def test_paper_config_plans_vllm_and_global_batch(esconv_dir):
    text = "\n".join(validate_plan(load_config(CONFIGS / "paper-qwen2.5-7b.yaml")))
    assert "global batch 128 completions = 16 prompts × group 8 (8 process(es))" in text
    assert "vLLM (colocate)" in text and "Qwen/Qwen2.5-7B-Instruct-1M" in text and "http" in text


def test_grpo_settings_reach_trl_and_the_plan(esconv_dir, tmp_path):
    from rlff_esc.policy.grpo import trl_config

    config = load_config(CONFIGS / "demo.yaml", ["policy.grpo.num_iterations=2", "policy.grpo.epsilon=0.3"])
    trl = trl_config(config, tmp_path)
    assert (trl.num_iterations, trl.epsilon, trl.num_generations) == (2, 0.3, 4)
    assert "2 step(s) per generation batch" in "\n".join(validate_plan(config))


def test_ablations_differ_from_demo_in_one_setting_only():
    def settings(name):
        config = load_config(CONFIGS / name).model_dump(exclude={"name", "run_dir", "base_dir"})
        config["simulate"].pop("policy_path", None)  # each run simulates with its own warm-up
        return config

    demo, immediate, no_reasoning = (settings(n) for n in ("demo.yaml", "ablation-immediate.yaml",
                                                            "ablation-no-reasoning.yaml"))
    assert immediate["simulate"]["horizon"] == 0 and demo["simulate"]["horizon"] > 0
    immediate["simulate"]["horizon"] = demo["simulate"]["horizon"]
    assert immediate == demo
    assert no_reasoning["policy"]["reasoning"] is False and demo["policy"]["reasoning"] is True
    no_reasoning["policy"]["reasoning"] = True
    assert no_reasoning == demo


@pytest.mark.parametrize("overrides, setting", [
    (["policy.grpo.per_device_batch_size=6", "policy.grpo.group_size=4"], "policy.grpo.group_size"),
    (["policy.grpo.num_processes=3", "policy.grpo.per_device_batch_size=2", "policy.grpo.group_size=4"],
     "num_processes 3"),
    (["models.seeker.backend=http"], "models.seeker.base_urls"),
    (["models.judge.backend=http", "models.judge.base_urls=[localhost:8000]"], "models.judge.base_urls"),
    (["data.path=/nonexistent/esconv"], "data.path"),
    (["policy.base_model=./no/such/folder"], "policy.base_model"),
    (["policy.base_model=embedded:gpt5"], "policy.base_model"),
    (["policy.reward_model_path=/nonexistent/rm"], "policy.reward_model_path"),
    (["policy.grpo.reward_weights={reward_model: 1.0, fluency: 1.0}"], "policy.grpo.reward_weights"),
    (["policy.grpo.reward_weights={reward_model: 0.0, format: 0.0}"], "policy.grpo.reward_weights"),
])
def test_dry_run_names_the_bad_setting(overrides, setting, esconv_dir):
    with pytest.raises(ConfigError, match=setting.replace("[", r"\[").replace(".", r"\.")):
        validate_plan(load_config(CONFIGS / "demo.yaml", overrides))


def test_dry_run_warns_instead_of_failing_on_machine_dependent_settings(esconv_dir, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    lines = validate_plan(load_config(CONFIGS / "demo.yaml", [
        "models.judge.backend=http", "models.judge.base_urls=[http://localhost:9/v1]",
        "models.judge.api_key_env=NO_SUCH_KEY", "policy.grpo.save_steps=1000"]))
    warnings = [line for line in lines if line.startswith("warning:")]
    assert any("NO_SUCH_KEY" in w for w in warnings) and any("save_steps" in w for w in warnings)


# -- data and rewards ---------------------------------------------------------------------------------
def test_warmup_examples_follow_the_format(tmp_path):
    config = make_config(tmp_path, "embedded:smollm2-135m-instruct")
    examples = sft_examples(config)
    assert len(examples) == 8 and all(e["context_id"].startswith(("esconv:0", "esconv:1", "esconv:2", "esconv:3"))
                                      for e in examples)  # train split only
    for e in examples:
        target = e["completion"][0]["content"]
        parsed = parse(target)
        assert parsed.well_formed and parsed.reply in SUPPORTER and "job crisis" in parsed.thinking
        # labelled and impersonal, so that it reads unlike a reply (first-person hints leaked into replies)
        assert "Plan: " in parsed.thinking and not {"I", "I'm", "me", "my"} & set(parsed.thinking.split())
        assert e["prompt"][0] == {"role": "system", "content": system_prompt(True)}
        assert e["prompt"][-1]["role"] == "user" and len(e["prompt"]) <= 1 + 3
    assert "reassurance" in warmup_target(build_contexts(Case(
        id="x", dataset="esconv", split="train", emotion_type="fear", problem_type="p", situation="s",
        turns=[Turn(speaker="seeker", text="a"), Turn(speaker="supporter", text="b",
                                                      strategy="Affirmation and Reassurance")]))[0], True)


class WordTokenizer:
    """One token per word: enough to test token budgets without loading a tokenizer."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": text.split()}


def test_warmup_keeps_only_targets_that_fit_the_completion_budget(tmp_path):
    config = make_config(tmp_path, "embedded:smollm2-135m-instruct", sft={"max_target_tokens": None, "max_examples": None},
                         grpo={"max_completion_length": 20})
    everything = sft_examples(config)
    lengths = {e["context_id"]: len(e["completion"][0]["content"].split()) for e in everything}
    assert min(lengths.values()) + 1 <= 20 < max(lengths.values()) + 1  # the fixture straddles the budget
    kept = sft_examples(config, WordTokenizer())  # budget: policy.grpo.max_completion_length
    assert kept and all(lengths[e["context_id"]] + 1 <= 20 for e in kept)
    assert len(kept) == sum(n + 1 <= 20 for n in lengths.values())
    assert fits_budget("a b c", WordTokenizer(), 4) and not fits_budget("a b c d", WordTokenizer(), 4)
    config.policy.sft.max_target_tokens = 8  # an explicit budget wins; nothing fits it
    with pytest.raises(RlffError, match="max_target_tokens"):
        sft_examples(config, WordTokenizer())


def test_grpo_prompts_carry_full_history(tmp_path):
    config = make_config(tmp_path, "embedded:smollm2-135m-instruct")
    rows = grpo_prompts(config)
    assert rows and all(r["prompt"][-1]["role"] == "user" for r in rows)
    longest = max(rows, key=lambda r: len(json.loads(r["history"])))
    assert len(json.loads(longest["history"])) == 5 and len(longest["prompt"]) == 1 + 3  # trimmed prompt, full history
    with pytest.raises(RlffError, match="no test-split contexts"):
        grpo_prompts(config, "test")


class LengthScorer:
    """A stand-in reward model: prefers replies of about ten words."""

    def __init__(self):
        self.calls = []

    def score(self, histories, replies):
        self.calls.append((histories, replies))
        return [-abs(len(r.split()) - 10) / 10 for r in replies]


def test_reward_model_reward_scores_replies_only_and_floors_unscorable():
    scorer = LengthScorer()
    reward = RewardModelReward(scorer)
    history = json.dumps([{"speaker": "seeker", "text": "I feel sad", "strategy": None}])
    completions = [[{"role": "assistant", "content": "<think>sad</think> " + "word " * 10}],
                   [{"role": "assistant", "content": "<think>unclosed and long"}],
                   [{"role": "assistant", "content": "<think>x</think> hi"}],
                   [{"role": "assistant", "content": "<think>x</think> " + "word " * 10 + "</think> loop"}]]
    scores = reward(prompts=[None] * 4, completions=completions, history=[history] * 4)
    assert scores[0] == 0.0 and scores[2] == pytest.approx(-0.9)
    assert scores[1] == scores[3] == min(scores[0], scores[2])  # malformed: the batch's lowest score
    histories, replies = scorer.calls[0]
    assert replies == ["word " * 9 + "word", "hi"] and histories[0][0].text == "I feel sad"


def test_standardized_reward_model_reward_is_scale_free_and_logs_the_raw_mean():
    history = json.dumps([{"speaker": "seeker", "text": "I feel sad", "strategy": None}])
    completions = [[{"role": "assistant", "content": f"<think>x</think> {'word ' * n}"}] for n in (10, 12, 16)]
    completions.append([{"role": "assistant", "content": "<think>unclosed"}])
    logged, results = {}, []
    for factor in (1.0, 100.0):  # the same preferences on another scale give the same rewards
        scorer = LengthScorer()
        scorer.score = lambda h, r, f=factor: [f * -abs(len(x.split()) - 10) / 10 for x in r]
        reward = RewardModelReward(scorer, standardize=True)
        results.append(reward(prompts=[None] * 4, completions=completions, history=[history] * 4,
                              log_metric=lambda name, value: logged.update({name: value})))
    assert results[0] == pytest.approx(results[1])
    scored = results[0][:3]
    assert sum(scored) == pytest.approx(0.0, abs=1e-9) and scored[0] > scored[1] > scored[2]
    assert sum(x * x for x in scored) / 3 == pytest.approx(1.0)
    assert results[0][3] == min(scored)  # malformed: still the batch's lowest score
    assert logged["reward_model/raw_mean"] == pytest.approx(100.0 * (0.0 - 0.2 - 0.6) / 3)


def test_completions_cut_off_at_the_length_cap_count_as_malformed():
    history = json.dumps([{"speaker": "seeker", "text": "I feel sad", "strategy": None}])
    texts = ["<think>a</think> " + "word " * 10, "<think>a</think> hi", "<think>a</think> " + "word " * 10]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    ids = [[5, 6, 7, 0], [5, 1], [5, 6, 7, 8]]  # 0 and 1 end a turn; the third stopped at the cap
    logged = {}
    fmt = FormatReward(True, end_token_ids={0, 1})(prompts=None, completions=completions, completion_ids=ids,
                                                   log_metric=lambda name, value: logged.update({name: value}))
    assert fmt == [1.0, 1.0, 0.0] and logged["format/compliance"] == pytest.approx(2 / 3)
    scorer = LengthScorer()
    scores = RewardModelReward(scorer, end_token_ids={0, 1})(prompts=[None] * 3, completions=completions,
                                                            history=[history] * 3, completion_ids=ids)
    assert scores[0] == 0.0 and scores[1] == pytest.approx(-0.9) and scores[2] == min(scores[:2])
    assert len(scorer.calls[0][1]) == 2  # the cut-off reply is not scored
    assert FormatReward(True, end_token_ids={0, 1})(prompts=None, completions=completions) == [1.0, 1.0, 1.0]


def test_end_token_ids_are_the_models_declared_ends_eos_and_padding(tiny_lm_dir):
    from rlff_esc.policy.model_io import end_token_ids, load_for_training

    model, tokenizer = load_for_training(str(tiny_lm_dir))
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 7]
    assert end_token_ids(model, tokenizer) == {tokenizer.eos_token_id, tokenizer.pad_token_id, 7}


def check_result(scores, compliance=1.0):
    return {"n": len(scores), "format_compliance": compliance, "mean_reward": sum(scores) / len(scores),
            "examples": [{"context_id": f"c{i}", "score": s} for i, s in enumerate(scores)]}


def test_compare_checks_pairs_contexts_and_bounds_the_difference():
    before = check_result([0.1, -0.3, 0.5, 0.0, 0.2, -0.1, 0.4, 0.3], compliance=0.5)
    better = check_result([s + 0.2 + 0.01 * (i % 3) for i, s in enumerate([0.1, -0.3, 0.5, 0.0, 0.2, -0.1, 0.4, 0.3])])
    better["examples"].reverse()  # paired by context id, not by position
    result = compare_checks(better, before)
    assert result["n"] == 8 and result["mean_reward_difference"] == pytest.approx(0.21, abs=0.005)
    assert 0.2 <= result["ci95"][0] <= result["mean_reward_difference"] <= result["ci95"][1] <= 0.22
    assert result["format_compliance_before"] == 0.5 and result["format_compliance_after"] == 1.0
    noisy = check_result([0.1, -0.2, 0.6, -0.1, 0.2, 0.0, 0.3, 0.3])  # ups and downs: the interval spans 0
    result = compare_checks(noisy, before)
    assert result["ci95"][0] < 0 < result["ci95"][1] and result["p"] > 0.05
    partial = check_result([0.1, -0.3, 0.5])  # only the contexts both checks scored are compared
    assert compare_checks(partial, before)["n"] == 3
    assert compare_checks(partial, before)["mean_reward_difference"] == pytest.approx(0.0)


def test_format_reward_logs_compliance_and_repetition_penalty():
    logged = {}
    texts = ["<think>a</think> b", "no tags", "<think>a</think><think>b</think> c", "<think>open"]
    rewards = FormatReward(True)(prompts=None, completions=[[{"role": "assistant", "content": t}] for t in texts],
                                 log_metric=lambda name, value: logged.update({name: value}))
    assert rewards == [1.0, 0.0, 0.5, 0.0] and logged == {"format/compliance": 0.25}
    assert repetition_penalty("one two three four five") == 0.0
    assert repetition_penalty("I am here I am here I am here") < -0.5
    assert completion_text("plain") == "plain"


def test_reward_functions_follow_weights(tmp_path):
    config = make_config(tmp_path, "embedded:smollm2-135m-instruct")
    funcs, weights = build_reward_functions(config, scorer=LengthScorer())
    assert [f.__name__ for f in funcs] == ["reward_model", "format", "repetition"] and weights == [1.0, 0.5, 0.1]
    with pytest.raises(RlffError, match="reward model not found"):
        build_reward_functions(config)  # the production path needs a trained reward model


# -- real training on the tiny model ------------------------------------------------------------------
@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory):
    """A reward model folder in the reward-model stage's format (MiniLM body, untrained head)."""
    from rlff_esc.reward_model.model import head_for, load_backbone, save_reward_model
    from rlff_esc.llm.embedded import resolve_model

    path = tmp_path_factory.mktemp("rm") / "reward_model"
    model, tokenizer, head = load_backbone("embedded:minilm")
    save_reward_model(model, tokenizer, path, {"backbone": "embedded:minilm", "head": head_for(resolve_model(
        "embedded:minilm")), "objective": "pairwise", "max_length": 128})
    return path


class StopAt:
    """Interrupts training right after a step, before that step's checkpoint is written."""

    def __new__(cls, step):
        from transformers import TrainerCallback

        class _Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == step:
                    raise KeyboardInterrupt(f"stopped at step {step}")

        return _Stop()


@pytest.mark.slow
def test_sft_then_grpo_with_resume_on_tiny_model(tmp_path, tiny_lm_dir, reward_model_dir):
    from rlff_esc.llm.base import GenerationRequest
    from rlff_esc.llm.local import LocalBackend
    from rlff_esc.policy.grpo import run_grpo
    from rlff_esc.policy.logs import read_log
    from rlff_esc.policy.sft import run_sft

    config = make_config(tmp_path, str(tiny_lm_dir), rm_path=str(reward_model_dir), grpo={"max_steps": 3})
    sft = run_sft(config)
    assert (sft / "config.json").exists() and not (sft / "adapter_config.json").exists()  # merged full weights
    assert json.loads((sft / "stage.json").read_text())["steps"] == 2
    written = (sft / "stage.json").stat().st_mtime_ns
    assert run_sft(config) == sft and (sft / "stage.json").stat().st_mtime_ns == written  # same inputs: skipped

    with pytest.raises(KeyboardInterrupt):
        run_grpo(config, callbacks=[StopAt(2)])
    partial = config.run_path / "policy.partial"
    assert sorted(p.name for p in (partial / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1"]
    assert not (config.run_path / "policy").exists()

    out = run_grpo(config)  # resumes from checkpoint-1 and finishes steps 2 and 3
    stage = json.loads((out / "stage.json").read_text())
    assert stage["resumed_at_step"] == 1 and stage["steps"] == 3
    assert not partial.exists() and not (out / "checkpoints").exists()
    steps = [r["step"] for r in read_log(out / "train_log.jsonl") if "reward" in r]
    assert steps == [1, 2, 3]
    row = read_log(out / "train_log.jsonl")[-2]
    assert {"rewards/reward_model/mean", "rewards/format/mean", "format/compliance"} <= set(row)
    assert (out / "training_curves.png").stat().st_size > 1000
    assert any((out / "tensorboard").iterdir())
    check = json.loads((out / "check.json").read_text())
    assert check["after"]["n"] == 2 and 0.0 <= check["after"]["format_compliance"] <= 1.0 - check["after"]["cut_off"]
    comparison = check["comparison"]  # paired over the same held-out contexts
    assert comparison["n"] == 2 and comparison["mean_reward_difference"] == pytest.approx(
        check["after"]["mean_reward"] - check["before"]["mean_reward"])
    from typer.testing import CliRunner

    from rlff_esc.cli import app

    written = tmp_path / "compared.json"  # the CLI compares two policies on the same held-out contexts
    result = CliRunner().invoke(app, ["policy", "check", str(out), "-c", str(tmp_path / "config.yaml"), "-n", "2",
                                      "--against", str(sft), "-o", str(written)])
    assert result.exit_code == 0, result.output
    compared = json.loads(written.read_text())
    assert compared["after"]["model"] == str(out) and compared["before"]["model"] == str(sft)
    assert compared["comparison"]["n"] == 2 and "paired contexts" in result.output
    backend = LocalBackend(str(out), batch_size=2)  # the trained policy loads by path like any model
    generated = backend.generate([GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_new_tokens=3)])
    assert generated[0].completion_tokens >= 1


@pytest.mark.slow
def test_batched_rollout_gives_trl_seeded_completions_of_its_own_prompts(tmp_path, tiny_lm_dir, reward_model_dir):
    import torch

    from rlff_esc.policy.grpo import build_trainer

    config = make_config(tmp_path, str(tiny_lm_dir), rm_path=str(reward_model_dir))
    trainer, _ = build_trainer(config, str(tiny_lm_dir), LengthScorer(), tmp_path / "work", None)
    assert trainer.rollout_func is not None  # policy.grpo.generation: batched, the default
    prompts = [row["prompt"] for row in grpo_prompts(config)[:2] for _ in range(2)]  # TRL repeats each per group
    first = trainer.rollout_func(prompts, trainer)
    assert first == trainer.rollout_func(prompts, trainer)  # seeded by run seed, step, process and row
    assert first["prompt_ids"] == trainer._tokenize_prompts(prompts)[0]  # what TRL's own generation reads
    budget, ends = config.policy.grpo.max_completion_length, set(trainer.eos_token_ids)
    for ids in first["completion_ids"]:
        assert 1 <= len(ids) <= budget and not ends & set(ids[:-1])  # an end token only last
        assert ids[-1] in ends or len(ids) == budget
    assert first["completion_ids"][0] != first["completion_ids"][1]  # a group's members are sampled apart
    assert trainer.model.training  # sampled in eval mode, handed back in training mode
    with torch.no_grad():  # a training step moves the adapters: the rollout must sample the moved weights
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
    assert trainer.rollout_func(prompts, trainer)["completion_ids"] != first["completion_ids"]


@pytest.mark.slow
def test_grpo_loss_and_gradients_are_stock_trls_with_the_cpu_levers(tmp_path, tiny_lm_dir):
    """The grouped-head attention and the head over labelled positions (``policy.attention`` and
    ``policy.lm_head`` auto) compute TRL's GRPO loss and gradients as stock TRL does: same weights,
    same batch of prompts (left-padded) and completions (right-padded)."""
    import torch

    from rlff_esc.policy.grpo import build_trainer
    from rlff_esc.policy.lm_head import labelled_positions

    trainers = {}
    for levers in ("trl", "auto"):
        config = make_config(tmp_path / levers, str(tiny_lm_dir), attention="sdpa" if levers == "trl" else "auto",
                             lm_head=levers, lora={"dropout": 0.0})
        trainers[levers], _ = build_trainer(config, str(tiny_lm_dir), LengthScorer(), tmp_path / levers / "work", None)
    stock, ours = trainers["trl"], trainers["auto"]
    assert ours.model.config._attn_implementation == "sdpa_gqa" != stock.model.config._attn_implementation
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA's B starts at zero, which would leave A without a gradient
        for name, p in stock.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    ours.model.load_state_dict(stock.model.state_dict())
    rows = [row for row in grpo_prompts(config)[:2] for _ in range(2)]
    inputs = stock._generate_and_score_completions(rows)
    assert inputs["prompt_mask"].sum(1).unique().numel() > 1  # prompts of different lengths: padded
    inputs["advantages"] = torch.tensor([1.0, -0.5, 0.5, 0.25])  # the tiny model's rewards may all tie
    results = []
    for trainer, levers in ((stock, "trl"), (ours, "auto")):
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this skips
        trainer.model.zero_grad()
        with labelled_positions(levers):
            loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))
    (stock_loss, stock_grads), (our_loss, our_grads) = results
    assert stock_loss != 0 and abs(our_loss - stock_loss) < 1e-5
    assert stock_grads.keys() == our_grads.keys() and any("lora_A" in n for n in stock_grads)
    for name, grad in stock_grads.items():
        torch.testing.assert_close(our_grads[name], grad, rtol=1e-4, atol=1e-7)
