"""Reward model: examples from trajectories, the dialogue split, inputs, metrics, training, scoring, CLI."""

from __future__ import annotations

import json
import math

import pytest

from rlff_esc.config import Config, RewardModelSection
from rlff_esc.errors import DataError, RlffError
from rlff_esc.jsonl import read_jsonl, write_jsonl
from rlff_esc.reward_model.data import Item, build_pairs, load_items, split_by_dialogue
from rlff_esc.reward_model.inputs import as_turns, encode
from rlff_esc.reward_model.metrics import evaluate_scores, pairwise_accuracy
from tests.rm_fixtures import DISMISSIVE, EMPATHETIC, write_fixture_run


def _item(context: str, reward: float, case: str = "c", reply: str = "r", success: float | None = None) -> Item:
    return Item(context_id=context, case_id=case, history=as_turns("hi"), reply=reply, reward=reward,
                success=success, rollouts=1)


def test_items_skip_null_rewards_and_average_seeds(tmp_path):
    run = write_fixture_run(tmp_path, contexts=4, null_rewards=2)
    records = [r for _, r in read_jsonl(run / "trajectories.jsonl")]
    extra = dict(records[-1], seed=1, key=records[-1]["key"][:-1] + "1",
                 rewards=dict(records[-1]["rewards"], final=records[-1]["rewards"]["final"] + 1.0))
    write_jsonl(run / "trajectories.jsonl", records + [extra])

    items, skipped = load_items(run / "trajectories.jsonl", run / "contexts.jsonl", "final")

    assert skipped == {"reward 'final' is null": 2}
    assert len(items) == len({(r["context_id"], r["reply"]) for r in records[2:]})
    merged = next(i for i in items if i.context_id == extra["context_id"] and i.reply == extra["reply"])
    assert merged.rollouts == 2
    assert merged.reward == pytest.approx(records[-1]["rewards"]["final"] + 0.5)
    assert all(i.history and i.history[-1].speaker == "seeker" for i in items)


def test_bad_trajectory_record_names_file_line_and_field(tmp_path):
    run = write_fixture_run(tmp_path, contexts=2)
    records = [r for _, r in read_jsonl(run / "trajectories.jsonl")]
    del records[2]["rewards"]
    write_jsonl(run / "trajectories.jsonl", records)
    with pytest.raises(DataError, match=r"trajectories.jsonl:3: field 'rewards'"):
        load_items(run / "trajectories.jsonl", run / "contexts.jsonl")
    records[2]["rewards"], records[2]["context_id"] = {"final": 0.1}, "nowhere"
    write_jsonl(run / "trajectories.jsonl", records)
    with pytest.raises(DataError, match=r":3: field 'context_id': 'nowhere' is not in"):
        load_items(run / "trajectories.jsonl", run / "contexts.jsonl")


def test_pairs_need_a_gap_above_the_threshold_and_carry_it_as_margin():
    items = [_item("a", 0.9), _item("a", 0.1), _item("a", 0.12), _item("b", -0.5)]
    pairs = build_pairs(items, margin_threshold=0.05)
    assert {(p.chosen, p.rejected) for p in pairs} == {(0, 1), (0, 2)}  # 1 vs 2 too close; b is alone
    assert sorted(p.margin for p in pairs) == pytest.approx([0.78, 0.8])


def test_split_keeps_each_dialogue_and_context_on_one_side(tmp_path):
    run = write_fixture_run(tmp_path, contexts=20)
    items, _ = load_items(run / "trajectories.jsonl", run / "contexts.jsonl")
    train, heldout = split_by_dialogue(items, 0.3, seed=13)
    assert train and heldout and len(train) + len(heldout) == len(items)
    assert not {i.case_id for i in train} & {i.case_id for i in heldout}
    assert not {i.context_id for i in train} & {i.context_id for i in heldout}
    assert len({i.case_id for i in heldout}) == 3  # 30% of 10 dialogues
    assert split_by_dialogue(items, 0.3, seed=13) == (train, heldout)


def test_history_is_cut_from_the_left_and_the_reply_kept(minilm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    history = as_turns("Seeker: the oldest words come first\nSupporter: go on\nSeeker: latest worry is money")
    ids = encode(tokenizer, history, "that sounds stressful", max_length=20)
    text = tokenizer.decode(ids)
    assert len(ids) == 20 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert "latest worry is money" in text and "that sounds stressful" in text and "oldest" not in text
    full = encode(tokenizer, history, "that sounds stressful", max_length=256)
    assert "the oldest words come first" in tokenizer.decode(full)


def test_pairs_encoded_together_are_encoded_as_one_by_one(minilm_dir, smollm2_dir):
    """``encode_pairs`` (one tokenizer batch, each distinct history once) gives ``encode``'s ids, for an
    encoder and a decoder tokenizer, with cut, whole, shared and empty histories."""
    from transformers import AutoTokenizer

    from rlff_esc.reward_model.inputs import encode_pairs

    long = as_turns("Seeker: " + "my week was long and tiring " * 12 + "\nSupporter: go on\nSeeker: money again")
    short = as_turns("Seeker: I failed my exam")
    histories, replies = [long, short, long, []], ["that sounds stressful", "ok", "you " * 40, "hello"]
    for path in (minilm_dir, smollm2_dir):
        tokenizer = AutoTokenizer.from_pretrained(path)
        assert encode_pairs(tokenizer, histories, replies, 48) == \
            [encode(tokenizer, h, r, 48) for h, r in zip(histories, replies)]
        assert encode_pairs(tokenizer, [], [], 48) == []


def test_reply_pooling_averages_the_reply_states_and_is_saved(tmp_path):
    import torch

    from rlff_esc.reward_model.model import load_backbone, load_reward_model, save_reward_model

    model, tokenizer, head = load_backbone("embedded:minilm", train_layers=0, pooling="reply")
    history = as_turns("Seeker: I failed my driving test again\nSupporter: oh no\nSeeker: I feel stupid")
    short, long = (encode(tokenizer, history, reply, max_length=64) for reply in ("ok", "you are not stupid"))
    width = len(long)
    input_ids = torch.tensor([short + [0] * (width - len(short)), long])
    attention = torch.tensor([[1] * len(short) + [0] * (width - len(short)), [1] * width])
    mask = model.pooling_mask(input_ids, attention)
    for row, ids in enumerate((short, long)):  # the reply's tokens and its closing [SEP], nothing else
        reply_start = ids.index(tokenizer.sep_token_id) + 1
        assert mask[row].tolist() == [int(reply_start <= i < len(ids)) for i in range(width)]

    save_reward_model(model, tokenizer, tmp_path / "rm", {"head": head, "max_length": 64})
    loaded, _, _ = load_reward_model(tmp_path / "rm")
    assert loaded.pooling == "reply"
    with torch.inference_mode():
        assert torch.allclose(loaded(input_ids, attention).logits, model.eval()(input_ids, attention).logits,
                              atol=1e-5)
    config = json.loads((tmp_path / "rm" / "config.json").read_text())
    del config["pooling"]  # a model saved before the option existed pools over every token
    (tmp_path / "rm" / "config.json").write_text(json.dumps(config))
    old, _, _ = load_reward_model(tmp_path / "rm")
    assert old.pooling == "all" and torch.equal(old.pooling_mask(input_ids, attention), attention)


def test_string_histories():
    assert [t.speaker for t in as_turns("Seeker: a\nsupporter: b\nSEEKER: c")] == ["seeker", "supporter", "seeker"]
    assert as_turns("I feel: bad") == as_turns([{"speaker": "seeker", "text": "I feel: bad"}])


def test_metrics_on_known_scores():
    items = [_item("a", 1.0, success=1), _item("a", 0.0, success=0), _item("b", 0.5, success=1),
             _item("b", -0.5, success=0)]
    pairs = build_pairs(items, 0.05)
    perfect = evaluate_scores(items, pairs, [3.0, 1.0, 2.0, 0.0])
    assert perfect["pairwise_accuracy"] == 1.0 and perfect["auc_success"] == 1.0
    assert perfect["spearman"] == 1.0 and perfect["kendall_within_context"] == 1.0
    assert pairwise_accuracy(pairs, [0.0, 0.0, 0.0, 1.0]) == 0.25  # one tie (0.5) and one miss
    constant = evaluate_scores(items, pairs, [1.0] * 4)
    assert constant["pairwise_accuracy"] == 0.5 and constant["spearman"] is None


def _config(run, **settings) -> Config:
    return Config(run_dir=str(run), seed=13, reward_model=RewardModelSection(**settings))


@pytest.fixture(scope="module")
def trained_minilm(tmp_path_factory):
    """MiniLM trained pairwise on a fixture whose reward follows empathy, not length."""
    from rlff_esc.reward_model.train import train_reward_model

    run = write_fixture_run(tmp_path_factory.mktemp("rm-run"), contexts=24, noise=0.15)
    config = _config(run, margin_threshold=0.4, heldout_fraction=0.25, epochs=2, learning_rate=3e-4,
                     batch_size=8, max_length=64, train_layers=2)
    return config, train_reward_model(config)


@pytest.mark.slow
def test_minilm_reward_model_learns_more_than_length(trained_minilm):
    config, metrics = trained_minilm
    out = config.run_path / "reward_model"
    scorers = metrics["scorers"]
    assert metrics["heldout"]["pairs"] >= 12 and not metrics["skipped"]
    assert scorers["reward_model"]["pairwise_accuracy"] >= 0.8
    assert scorers["reward_model"]["pairwise_accuracy"] > scorers["reply_length"]["pairwise_accuracy"]
    assert json.loads((out / "metrics.json").read_text())["scorers"] == scorers
    info = json.loads((out / "reward_model.json").read_text())
    assert info["head"] == "mean_pool" and info["max_length"] == 64 and (out / "tokenizer.json").exists()
    manifest = json.loads((config.run_path / "manifest.json").read_text())
    assert "reward_model" in manifest["stages"]


@pytest.mark.slow
def test_same_trajectories_skip_training(trained_minilm):
    from rlff_esc.reward_model.train import train_reward_model

    config, metrics = trained_minilm
    again = train_reward_model(config)
    assert again["skipped"] and again["scorers"] == metrics["scorers"]


@pytest.mark.slow
def test_scorer_loads_alone_and_batches_like_single_calls(trained_minilm):
    from rlff_esc.reward_model.scoring import RewardModelScorer

    config, _ = trained_minilm
    history = as_turns("Seeker: My cat died this morning and I can't stop crying.")
    replies = EMPATHETIC[:3] + DISMISSIVE[:3] + ["ok"]
    scores = {}
    for dtype in ("float32", "bfloat16"):  # bfloat16 rounds differently per batch shape: close, not equal
        scorer = RewardModelScorer(config.run_path / "reward_model", batch_size=3, dtype=dtype)
        batched = scorer.score([history] * len(replies), replies)
        single = [scorer.score([history], [r])[0] for r in replies]
        assert batched == pytest.approx(single, abs=1e-4 if dtype == "float32" else 0.05)
        assert min(batched[:3]) > max(batched[3:6])  # learned: empathy scores above dismissal
        scores[dtype] = batched
    assert scores["bfloat16"] == pytest.approx(scores["float32"], abs=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("objective,lora,train_layers", [("pairwise", True, None), ("pointwise", False, 1),
                                                        ("classification", False, None)])
def test_causal_lm_score_head_trains_saves_and_scores(tmp_path, tiny_lm_dir, objective, lora, train_layers):
    from rlff_esc.reward_model.scoring import RewardModelScorer
    from rlff_esc.reward_model.train import train_reward_model

    run = write_fixture_run(tmp_path, contexts=8)
    config = _config(run, backbone=str(tiny_lm_dir), objective=objective, lora=lora, lora_r=4, epochs=1,
                     batch_size=8, max_length=48, heldout_fraction=0.25, train_layers=train_layers)
    metrics = train_reward_model(config)
    out = run / "reward_model"
    assert metrics["objective"] == objective and metrics["scorers"]["reward_model"]["pairwise_accuracy"] is not None
    assert not list(out.glob("adapter_*"))  # LoRA merged: the folder loads without peft
    scorer = RewardModelScorer(out)
    assert scorer.info["head"] == "score_head"
    scores = scorer.score([as_turns("I feel sad"), as_turns("Seeker: hi\nSupporter: hello\nSeeker: bad day")],
                          ["I'm sorry.", "Tell me more about it."])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)


@pytest.mark.slow
def test_cli_scores_a_file_and_a_single_reply(trained_minilm, tmp_path, monkeypatch, capsys):
    from rlff_esc import cli

    config, _ = trained_minilm
    model = str(config.run_path / "reward_model")
    requests = tmp_path / "requests.jsonl"
    write_jsonl(requests, [{"id": 1, "history": [{"speaker": "seeker", "text": "I failed my exam."}],
                            "reply": EMPATHETIC[0]},
                           {"id": 2, "history": "I failed my exam.", "reply": DISMISSIVE[0]}])
    scored = tmp_path / "scored.jsonl"
    monkeypatch.setattr("sys.argv", ["rlff-esc", "rm", "score", "--model", model, "--input", str(requests),
                                     "--output", str(scored)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 0
    rows = [r for _, r in read_jsonl(scored)]
    assert [r["id"] for r in rows] == [1, 2] and rows[0]["score"] > rows[1]["score"]

    monkeypatch.setattr("sys.argv", ["rlff-esc", "rm", "score", "--model", model, "--history",
                                     "I failed my exam.", "--reply", EMPATHETIC[0]])
    with pytest.raises(SystemExit):
        cli.main()
    assert float(capsys.readouterr().out.strip().splitlines()[-1]) == pytest.approx(rows[0]["score"], abs=1e-3)

    write_jsonl(requests, [{"history": "hi", "reply": "ok"}, {"history": [{"speaker": "robot", "text": "x"}],
                                                              "reply": "ok"}])
    monkeypatch.setattr("sys.argv", ["rlff-esc", "rm", "score", "--model", model, "--input", str(requests)])
    with pytest.raises(SystemExit) as failed:
        cli.main()
    assert failed.value.code == 2
    assert "requests.jsonl:2: field 'history.0.speaker'" in capsys.readouterr().err


@pytest.mark.slow
def test_cross_validation_scores_every_reply_out_of_fold(tmp_path, tiny_lm_dir):
    from rlff_esc.reward_model.train import cross_validate

    run = write_fixture_run(tmp_path, contexts=8, null_rewards=0)
    config = _config(run, backbone=str(tiny_lm_dir), objective="pointwise", epochs=1, max_length=48)
    metrics = cross_validate(config, folds=2)
    items, _ = load_items(run / "trajectories.jsonl", run / "contexts.jsonl")
    assert metrics["heldout"]["items"] == len(items) and metrics["heldout"]["dialogues"] == 4
    assert metrics["heldout"]["pairs"] == len(build_pairs(items, config.reward_model.margin_threshold))
    assert metrics["scorers"]["reward_model"]["pairwise_accuracy"] is not None
    assert json.loads((run / "reward_model" / "cv_metrics.json").read_text()) == metrics
    with pytest.raises(RlffError, match="--cv-folds 5: needs 2 to 4"):
        cross_validate(config, folds=5)
