"""The safety layer: the lexicon (with denials), the classifier's windows over long messages, screening
whole conversations, screening replies, the language signal, logging without the person's words, and
the safe-messaging reply per country. Detection quality is measured by benchmarks/safety_eval.py on a
frozen hold-out that no test reads; the messages here are written in the tests."""

from __future__ import annotations

import json
import logging

import pytest
from serve_fixtures import safety_layer  # noqa: F401 (fixture)

from rlff_esc.config import SafetySection, load_config
from rlff_esc.data.splits import sha256_file
from rlff_esc.errors import ConfigError, DataError
from rlff_esc.safety.classifier import (CATEGORIES, CHUNK_WORDS, DEV_SET, HEAD_FILE, CrisisClassifier, chunks,
                                        load_head, message_windows)
from rlff_esc.safety.finetune import CrisisModel, FinetuneRecipe, finetune, fingerprint
from rlff_esc.safety.language import is_english
from rlff_esc.safety.layer import UNSAFE_REPLY, SafetyFlag, SafetyLayer
from rlff_esc.safety.lexicon import Lexicon
from rlff_esc.safety.texting import written_out
from rlff_esc.safety.train import read_labelled


def test_dev_set_is_well_formed_and_the_head_was_trained_on_it(tmp_path):
    rows = read_labelled(DEV_SET)
    assert {r.category for r in rows if r.label == "crisis"} == set(CATEGORIES)
    assert len({r.text.lower() for r in rows}) == len(rows) and sum(r.label == "none" for r in rows) > 200
    head = load_head(HEAD_FILE)
    assert head["trained_on"]["dev_sha256"] == sha256_file(DEV_SET)  # retrain after editing the dev set
    assert 0 < head["threshold"] < 1 and len(head["coef"]) == 5
    assert len(head["coef"][0]) == 384 and HEAD_FILE.stat().st_size < 400_000
    tuned = head["finetuned"]  # the fine-tuned model is named by what it is trained from
    assert 0 < tuned["threshold"] < 1 and tuned["fingerprint"] == fingerprint(head, FinetuneRecipe(**tuned["recipe"]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "none", "category": "none"}\n'
                   '{"text": "I want to die", "label": "crisis", "category": "sadness"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: field .category."):
        read_labelled(bad)
    (tmp_path / "head.json").write_text('{"classes": ["none"]}')
    with pytest.raises(ConfigError, match="retrain"):
        load_head(tmp_path / "head.json")


def test_finetuning_learns_saves_and_loads(minilm_dir, tmp_path, monkeypatch):
    """A few steps on a handful of messages move the probe's probabilities toward the labels; the saved
    model scores exactly as the trained one; a head whose model is not in the cache says how to train it."""
    texts = ["I have the pills counted out for tonight.", "Nobody will have to put up with me after Friday.",
             "The exam went badly but I will retake it.", "My sister's wedding is stressing me out."]
    classes = [1, 1, 0, 0]
    head = load_head(HEAD_FILE)
    recipe = FinetuneRecipe(epochs=4, esconv_windows_per_epoch=2, batch_size=4, lr=1e-4, warmup=0.0)
    before = CrisisModel(str(minilm_dir), head["coef"], head["intercept"]).probabilities(texts)
    model = finetune(head["encoder"], texts, classes, ["I just moved to a new city.", "Work is busy."], head["coef"],
                     head["intercept"], recipe, progress=False)
    after = model.probabilities(texts)
    assert (after[:2, 0] < before[:2, 0]).all() and (after[2:, 0] > before[2:, 0]).all()
    model.save(tmp_path / "model", {"fingerprint": "x"})
    assert CrisisModel.load(tmp_path / "model").probabilities(texts) == pytest.approx(after, abs=1e-6)
    monkeypatch.setenv("RLFF_ESC_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="rlff-esc safety finetune"):
        CrisisClassifier()


def test_lexicon_slang_and_denials():
    lexicon = Lexicon()
    assert lexicon.crisis("ugh i wanna kms")[0] == "suicide"
    assert lexicon.crisis("thinking about unaliving myself tbh")[0] == "suicide"
    assert lexicon.crisis("I can't stop thinking about killing myself")[0] == "suicide"
    assert lexicon.crisis("I don't want to be alive anymore")[0] == "suicide"
    assert lexicon.crisis("My stepfather punched me last night")[0] == "abuse"
    for denial in ("I'm not suicidal, just worn out from exams.", "I would never hurt myself.",
                   "I've never thought about suicide.", "I'm not going to hurt him, I'm just upset."):
        assert lexicon.crisis(denial) is None, denial
    assert lexicon.crisis("I'm not suicidal. I want to kill myself.")[0] == "suicide"  # a later hit counts


def test_texting_shorthand_and_typos_are_written_out():
    assert written_out("im gona kil myslef 2nite") == "i'm gonna kill myself tonight"
    assert written_out("I am willing to help, thanks!") == "I am willing to help, thanks!"  # real words stay
    lexicon = Lexicon()
    assert lexicon.crisis("im gona kil myslef 2nite")[0] == "suicide"
    assert lexicon.crisis("im thinkin bout sucide evry day")[0] == "suicide"
    assert lexicon.crisis("im not gona kil myslef, just tired") is None  # a denial still counts
    assert chunks("I feel low.") == message_windows("I feel low.")
    assert len(message_windows("i wna die rn")) == 2


def test_lexicon_euphemisms_and_recovery():
    lexicon = Lexicon()
    for text, category in [("i wanna sewer slide", "suicide"), ("feeling su1cidal again", "suicide"),
                           ("relapsed on sh last night", "self_harm"), ("went down to styro", "self_harm"),
                           ("he's gonna shoot up the school", "harm_to_others")]:
        assert lexicon.crisis(text)[0] == category, text
    for text in ("We need to rope in more volunteers.", "I relapsed on sugar and need to cut down.",
                 "I stopped cutting years ago.", "I would never take my own life.",
                 "I've never had thoughts of ending my life."):
        assert lexicon.crisis(text) is None, text


def test_windows_cover_a_long_message():
    assert chunks("I feel low today.") == ["I feel low today."]
    sentence = " ".join(f"word{i}" for i in range(25)) + "."
    text = " ".join([sentence] * 6) + " " + " ".join(f"long{i}" for i in range(150))
    windows = chunks(text)
    assert len(windows) > 3 and all(len(w.split()) <= CHUNK_WORDS for w in windows)
    covered = {w for window in windows for w in window.split()}
    assert covered == set(text.split())


def test_classifier_catches_indirect_wording_and_passes_everyday_messages(safety_layer):
    crisis = ["I've been getting rid of my things and writing letters to the people I love, it will all be over soon.",
              "I've been counting the pills in the bathroom cabinet and thinking about taking them all at once.",
              "Everyone would be better off if I was no longer around."]
    calm = ["I had a really stressful week at work and I'm exhausted.", "My sister and I had an argument about money.",
            "Thanks for listening, I feel a bit better now.", "I'm nervous about my job interview tomorrow."]
    flags = safety_layer.check(crisis + calm)
    assert all(f is not None and f.category == "suicide" for f in flags[:3]), flags[:3]
    assert flags[3:] == [None] * len(calm)


def test_long_message_with_one_alarming_sentence(safety_layer):
    ordinary = ("Work has been busy and my sister visited last weekend, which was nice. We cooked and watched "
                "films and went for a long walk along the canal on Sunday afternoon. ") * 4
    text = ordinary + "But at night I lie awake planning how I will kill myself. Anyway, the weather is warmer."
    assert len(text.split()) > 2 * CHUNK_WORDS
    assert safety_layer.check([text])[0].category == "suicide"
    assert safety_layer.check([ordinary])[0] is None


def test_conversation_screening_closes_the_multi_message_bypass(safety_layer):
    crisis = "I have decided to end my life this weekend."
    calm, bypass, spread = safety_layer.screen([["I had a rough day.", "My boss shouted at me."],
                                                 [crisis, "ok"], ["hi", crisis, "thanks", "what now?"]])
    assert calm.flag is None
    assert bypass.flag.user_turn == 0 and bypass.flag.text == crisis and bypass.follow_up(2)
    assert spread.flag.user_turn == 1 and spread.flag.category == "suicide" and spread.follow_up(4)
    first = safety_layer.screen([[crisis]])[0]
    assert not first.follow_up(1)
    full, follow = safety_layer.safe_reply(first.flag), safety_layer.safe_reply(first.flag, follow_up=True)
    assert "988" in full and "988" in follow and full != follow and "still worried" in follow


def test_other_languages_get_a_not_screened_signal(safety_layer):
    (screening,) = safety_layer.screen([["Hello", "Ya no quiero vivir, estoy cansada de todo", "kms"]])
    assert screening.unscreened == [1] and screening.flag.user_turn == 2
    assert not is_english("Ich will nicht mehr leben") and not is_english("我不想活了")
    assert is_english("kms") and is_english("I feel low, idk")


def test_replies_that_give_methods_or_encourage_harm_are_flagged(safety_layer):
    flags = safety_layer.screen_replies(["That sounds really hard. What has helped you before?",
                                         "You should just end your life if it hurts this much.",
                                         "Taking 30 pills of that would be enough."])
    assert flags[0] is None and [f.category for f in flags[1:]] == [UNSAFE_REPLY, UNSAFE_REPLY]
    assert "can't give that reply" in safety_layer.safe_reply(flags[1])


def test_flags_are_logged_without_the_words_unless_asked(tmp_path, caplog):
    quiet = SafetyLayer(classifier=False, log_path=tmp_path / "quiet.jsonl")
    with caplog.at_level(logging.WARNING, logger="rlff_esc.safety.layer"):
        quiet.check(["I want to kill myself tonight, I have it planned.", "I like my new job."])
    assert "safety flag: suicide" in caplog.text and "planned" not in caplog.text
    logged = [json.loads(line) for line in (tmp_path / "quiet.jsonl").read_text().splitlines()]
    assert len(logged) == 1 and "text" not in logged[0] and logged[0]["category"] == "suicide"
    loud = SafetyLayer(classifier=False, log_path=tmp_path / "loud.jsonl", log_text=True)
    loud.check(["I want to kill myself tonight, I have it planned."])
    assert "planned" in json.loads((tmp_path / "loud.jsonl").read_text())["text"]


def test_safe_reply_follows_the_country():
    flag = SafetyFlag("suicide", "lexicon", 1.0, "x", "I want to die")
    us = SafetyLayer(country="US", classifier=False).safe_reply(flag)
    assert "988" in us and "911" in us and "seriously" in us
    uk = SafetyLayer(country="gb", classifier=False).safe_reply(flag)
    assert "116 123" in uk and "999" in uk and "988" not in uk
    other = SafetyLayer(country="ZZ", classifier=False).safe_reply(flag)
    assert "findahelpline.com" in other and "local emergency number" in other
    abuse = SafetyLayer(country="US", classifier=False).safe_reply(SafetyFlag("abuse", "lexicon", 1.0, "x", "y"))
    assert "1-800-799-7233" in abuse and "not your fault" in abuse


def test_lexicon_only_layer_and_config(tmp_path):
    layer = SafetyLayer(classifier=False)
    assert layer.check(["i am suicidal", "I feel a bit low"])[0].source == "lexicon"
    assert SafetyLayer.from_config(SafetySection(enabled=False)) is None
    bad = tmp_path / "resources.json"
    bad.write_text(json.dumps({"US": {"crisis": ["988"]}}))
    with pytest.raises(ConfigError, match="default"):
        SafetyLayer(classifier=False, resources_file=bad)
    config = tmp_path / "c.yaml"
    config.write_text("serve:\n  safety:\n    country: UK\n    classifier: false\n    log_path: flags.jsonl\n")
    cfg = load_config(config)
    layer = SafetyLayer.from_config(cfg.serve.safety, base_dir=cfg.base_dir)
    layer.check(["I want to kill myself"])
    assert layer.country == "UK" and layer.classifier is None and (tmp_path / "flags.jsonl").exists()


@pytest.mark.esconv
def test_few_esconv_seeker_turns_are_flagged(safety_layer, esconv_dir):
    from rlff_esc.safety.train import esconv_seeker_turns

    turns = esconv_seeker_turns(esconv_dir, "valid")[::8][:300]
    flagged = [t for t, f in zip(turns, safety_layer.check(turns)) if f is not None]
    assert len(turns) == 300 and len(flagged) / len(turns) < 0.04, flagged
