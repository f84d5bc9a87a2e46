"""Readers, splits and the context builder, on small fixtures written here and on the real files."""

import json
import subprocess
import sys
from collections import Counter

import pytest

from rlff_esc.config import Config
from rlff_esc.data import esconv, extes, splits
from rlff_esc.data.contexts import build_contexts, merge_runs
from rlff_esc.data.prepare import load_cases, prepare, read_contexts
from rlff_esc.data.schema import Turn
from rlff_esc.errors import DataError


def dialogue(**over):
    record = {"emotion_type": "anxiety", "problem_type": "Job Crisis", "situation": "I may lose my job.",
              "survey_score": {"seeker": {"initial_emotion_intensity": "4", "final_emotion_intensity": "2"}},
              "dialog": [{"text": "Hi.", "speaker": "sys", "strategy": "Question"},
                         {"text": "I am worried", "speaker": "usr"},
                         {"text": "about my job.", "speaker": "usr"},
                         {"text": "That sounds hard.", "speaker": "sys", "strategy": "Reflection of feelings"},
                         {"text": "Thanks.", "speaker": "usr"}]}
    record.update(over)
    return record


def write_lines(path, lines):
    path.write_bytes(b"\n".join(l if isinstance(l, bytes) else json.dumps(l).encode() for l in lines) + b"\n")
    return path


def test_processed_record_is_normalised(tmp_path):
    path = write_lines(tmp_path / "train.txt", [dialogue()])
    case = esconv.read_processed(path, split="train").cases[0]
    assert case.id == "esconv:train:0" and case.problem_type == "job crisis"
    assert case.survey == {"initial_emotion_intensity": 4.0, "final_emotion_intensity": 2.0}
    assert [t.speaker for t in case.turns] == ["supporter", "seeker", "seeker", "supporter", "seeker"]


@pytest.mark.parametrize("line, message", [
    (b'{"emotion_type": "anxiety", ', r"train\.txt:2: malformed JSON"),
    (b"\xff\xfe not utf-8", r"train\.txt:2: bytes are not UTF-8"),
    (json.dumps({k: v for k, v in dialogue().items() if k != "situation"}).encode(),
     r"train\.txt:2: field 'situation': missing"),
    (json.dumps(dialogue(dialog="Hi")).encode(), r"train\.txt:2: field 'dialog': expected a list"),
    (json.dumps(dialogue(situation=7)).encode(), r"train\.txt:2: field 'situation': expected a string"),
    (json.dumps(dialogue(dialog=[])).encode(), r"train\.txt:2: field 'dialog': empty dialogue"),
    (json.dumps(dialogue(dialog=[{"text": "x", "speaker": "bot"}])).encode(),
     r"train\.txt:2: field 'dialog\[0\]\.speaker': unknown speaker 'bot'"),
    (json.dumps(dialogue(dialog=[{"speaker": "usr"}])).encode(), r"train\.txt:2: field 'dialog\[0\]\.text': missing"),
])
def test_bad_record_names_file_line_and_field(tmp_path, line, message):
    path = write_lines(tmp_path / "train.txt", [dialogue(), line, dialogue()])
    with pytest.raises(DataError, match=message):
        esconv.read_processed(path, split="train")
    skipped = esconv.read_processed(path, split="train", skip_invalid=True)
    assert [c.id for c in skipped.cases] == ["esconv:train:0", "esconv:train:2"]
    assert len(skipped.skipped) == 1 and skipped.skipped[0].line == 2


def test_raw_layout_and_failed_speakers(tmp_path):
    raw = [{"emotion_type": "fear", "problem_type": "breakup", "situation": "s",
            "dialog": [{"speaker": "seeker", "annotation": {"feedback": "3"}, "content": "I am scared."},
                       {"speaker": "supporter", "annotation": {"strategy": "Question"}, "content": "Why?"}]},
           {"emotion_type": "fear", "problem_type": "breakup", "situation": "s",
            "dialog": [{"speaker": "listener", "annotation": {}, "content": "Hi"},
                       {"speaker": "speaker", "annotation": {}, "content": "Hello"}]}]
    path = tmp_path / "ESConv.json"
    path.write_text(json.dumps(raw))
    cases = esconv.read_raw(path).cases
    assert cases[0].turns[1].strategy == "Question"
    assert [t.speaker for t in cases[1].turns] == ["supporter", "seeker"]
    raw[1]["dialog"][0]["speaker"] = "narrator"
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"ESConv\.json\[1\]: field 'dialog\[0\]\.speaker': unknown speaker"):
        esconv.read_raw(path)


def test_extes_repairs_and_skips(tmp_path):
    data = [{"scene": "Academic Stress", "description": "Exams.", "content": [
                {"User": "I can't focus."},
                {"AI": "That sounds stressful.", "AI Strategy": "emotional validation"},
                {"User": "Yes.", "AI": "What helps you?", "AI Strategy": "Made-up Strategy"}]},
            {"scene": "Breakups or Divorce", "description": "x", "content": []},
            {"scene": "Work", "description": "y", "content": [{"AI": "Hi"}]}]
    path = tmp_path / "ExTES.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"ExTES\.json: field '\[1\]\.content': empty dialogue"):
        extes.read_extes(path)
    result = extes.read_extes(path, skip_invalid=True)
    assert [c.id for c in result.cases] == ["extes:0", "extes:2"] and len(result.skipped) == 1
    turns = result.cases[0].turns
    assert [t.speaker for t in turns] == ["seeker", "supporter", "seeker", "supporter"]
    assert turns[1].strategy == "Emotional Validation" and turns[3].strategy == "Others"
    assert result.repaired == {"turns holding both User and AI split": 1,
                               "missing or off-list strategies set to Others": 2}


def test_extes_split_is_deterministic_and_bound_to_its_file(tmp_path):
    cases = extes.read_extes(_extes_file(tmp_path, 30)).cases
    a, b = splits.extes_split(cases, "abc"), splits.extes_split(cases, "abc")
    assert a == b and (len(a["train"]), len(a["valid"]), len(a["test"])) == (24, 3, 3)
    assert set(a["train"]).isdisjoint(a["test"])
    with pytest.raises(DataError, match="sha256"):
        splits.apply_extes_split(cases, a, "another-file")


def _extes_file(tmp_path, n):
    path = tmp_path / "ExTES.json"
    path.write_text(json.dumps([{"scene": "Work", "description": f"case {i}", "content": [
        {"User": f"problem {i}"}, {"AI": "I hear you.", "AI Strategy": "Empathetic Statements"}]} for i in range(n)]))
    return path


def test_contexts_merge_runs_and_end_at_seeker_turns(tmp_path):
    case = esconv.read_processed(write_lines(tmp_path / "train.txt", [dialogue()]), split="train").cases[0]
    assert [t.text for t in merge_runs(case.turns)][1] == "I am worried about my job."
    contexts = build_contexts(case)
    assert len(contexts) == 1  # the final seeker turn has no gold reply
    assert contexts[0].history[-1].text == "I am worried about my job."
    assert contexts[0].gold_reply == "That sounds hard." and contexts[0].gold_strategy == "Reflection of feelings"
    assert merge_runs([Turn(speaker="seeker", text="a")]) == [Turn(speaker="seeker", text="a")]


def test_prepare_with_extes_writes_split(tmp_path):
    config = Config(run_dir=str(tmp_path / "run"), data={"dataset": "extes", "path": str(_extes_file(tmp_path, 20))})
    summary = prepare(config)
    assert summary["cases"] == {"train": 16, "valid": 2, "test": 2}
    assert len(read_contexts(tmp_path / "run" / "contexts.jsonl", split="test")) == 2


@pytest.mark.esconv
def test_ppdpp_split_counts_on_real_esconv(esconv_dir, tmp_path):
    config = Config(run_dir=str(tmp_path), data={"path": str(esconv_dir), "split": "ppdpp"})
    result, hashes = load_cases(config)
    assert Counter(c.split for c in result.cases) == {"train": 1040, "valid": 130, "test": 130}
    assert len(hashes) == 4
    seed13, _ = load_cases(Config(run_dir=str(tmp_path), data={"path": str(esconv_dir), "split": "seed13"}))
    assert Counter(c.split for c in seed13.cases) == {"train": 910, "valid": 195, "test": 195}


def test_cli_reports_bad_data_without_traceback(tmp_path):
    folder = tmp_path / "esconv"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        write_lines(folder / f"{split}.txt", [dialogue()])
    write_lines(folder / "valid.txt", [dialogue(), dialogue(dialog=[])])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: run\ndata:\n  path: {folder}\n  split: seed13\n")
    cmd = [sys.executable, "-m", "rlff_esc", "data", "prepare", "-c", str(cfg)]
    failed = subprocess.run(cmd, capture_output=True, text=True)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "valid.txt:2: field 'dialog': empty dialogue" in failed.stderr
    ok = subprocess.run(cmd + ["--skip-invalid"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "skipped  1 records" in ok.stdout and (tmp_path / "run" / "manifest.json").exists()
