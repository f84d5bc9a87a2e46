"""Interactive evaluation, PPDPP's protocol (Deng et al., ICLR 2024).

The seeker opens with the case's ``situation``; then the system and the seeker alternate. After each
exchange (a system reply and the seeker's reaction) the critic judges the dialogue; the dialogue
succeeds at that turn when the critic's mean mapped score is above the threshold (0.5), and stops.
A dialogue has at most ``max_turns`` system turns. All dialogues advance together, those of several
systems too: one batched call per system, one for the seeker and one for the critic per turn.

Seeds depend on the case, the turn and the role only, never on the system, so every system meets
the same seeker draws: comparisons between systems are paired.

When a safety layer is given, every seeker message of the dialogue is screened before each system
turn; a dialogue with a flagged message is in safe mode: it gets the layer's safe reply instead of the
system's (the system is not asked, so a flagged message never reaches it), and the flag is kept in
the transcript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from rlff_esc.agents.base import Dialogue
from rlff_esc.agents.seeker import similar
from rlff_esc.config import Config
from rlff_esc.data.prepare import read_cases
from rlff_esc.data.schema import Profile, Turn
from rlff_esc.errors import DataError, RlffError
from rlff_esc.evaluate.base import System
from rlff_esc.evaluate.systems import respond_together
from rlff_esc.jsonl import read_jsonl
from rlff_esc.seeds import stable_int

CASE_FIELDS = ("emotion_type", "problem_type", "situation")


@dataclass
class EvalCase:
    id: str
    profile: Profile


def read_cases_file(path: Path) -> list[EvalCase]:
    """Cases from any JSONL file with emotion_type, problem_type and situation (non-empty strings);
    ``id`` is optional. A bad record raises a DataError naming file, line and field."""
    cases = []
    for line, obj in read_jsonl(path):
        for name in CASE_FIELDS:
            value = obj.get(name)
            if not isinstance(value, str) or not value.strip():
                problem = "missing" if value is None else f"expected a non-empty string, got {value!r}"
                raise DataError(path, line, name, problem)
        profile = Profile(**{name: obj[name].strip() for name in CASE_FIELDS})
        cases.append(EvalCase(id=str(obj.get("id", f"{Path(path).name}:{line}")), profile=profile))
    if not cases:
        raise DataError(path, None, None, "no cases in the file")
    return cases


def evaluation_cases(config: Config) -> tuple[list[EvalCase], str]:
    """The cases to talk through, and where they came from: ``evaluate.cases_file`` if set, else the
    run's ``cases.jsonl`` split ``evaluate.split`` (ESConv's PPDPP test split, or ExTES test cases)."""
    ev = config.evaluate
    if ev.cases_file:
        path = config.resolve(ev.cases_file)
        if not path.exists():
            raise RlffError(f"evaluate.cases_file: {path} does not exist")
        cases, source = read_cases_file(path), str(path)
    else:
        path = config.paths.cases
        if not path.exists():
            raise RlffError(f"{path} is missing: run `rlff-esc data prepare` first (or pass --cases FILE)")
        cases = [EvalCase(c.id, c.profile) for c in read_cases(path) if c.split == ev.split]
        if not cases:
            raise RlffError(f"evaluate.split: no cases of split {ev.split!r} in {path}")
        source = f"{path} (split {ev.split})"
    return cases[: ev.max_cases] if ev.max_cases else cases, source


def turn_seed(seed: int, case_id: str, turn: int, role: str) -> int:
    return stable_int(seed, case_id, turn, role)


@dataclass
class _State:
    case: EvalCase
    turns: list[Turn]
    critic: list[dict] = field(default_factory=list)
    system_notes: list[dict] = field(default_factory=list)
    safety: list[dict] = field(default_factory=list)
    success_turn: int | None = None

    def record(self, system: str, max_turns: int) -> dict:
        scores = [c["score"] for c in self.critic if c["score"] is not None]
        return {"case_id": self.case.id, "system": system, "profile": self.case.profile.model_dump(),
                "turns": [t.model_dump(exclude_none=True) for t in self.turns], "critic": self.critic,
                "system_notes": self.system_notes, "safety_flags": self.safety,
                "success": self.success_turn is not None, "success_turn": self.success_turn,
                "turns_used": self.success_turn or len(self.critic),
                "final_score": scores[-1] if scores else None, "max_turns": max_turns}


def run_dialogues(jobs: list[tuple], seeker, critic, *, max_turns: int, threshold: float, seed: int,
                  safety=None, progress: bool = True) -> dict[str, list[dict]]:
    """Talk each job's cases through with its system; ``jobs`` is a list of (system, cases). Returns
    one transcript record per case, in case order, per system name.

    The systems run side by side: each turn, every system answers its own active dialogues (systems
    over one model in one call), then the seeker reacts to all of them in one call and the critic
    judges them in one call. The seeker's prompts for one case under different systems begin alike
    (persona, profile, opening), so its backend computes that beginning once and decodes fuller batches
    (the speed measured: README, "Evaluation")."""
    states = [(system, _State(c, [Turn(speaker="seeker", text=c.profile.situation)])) for system, cases in jobs
              for c in cases]
    active = list(range(len(states)))
    label = jobs[0][0].name if len(jobs) == 1 else f"{len(jobs)} systems"
    bar = tqdm(total=max_turns, desc=f"evaluate {label}", unit="turn", disable=not progress)
    for turn in range(1, max_turns + 1):
        if not active:
            break
        _system_turns([(system, [states[i][1] for i in active if states[i][0] is system]) for system, _ in jobs],
                      turn, seed, safety)
        now = [states[i][1] for i in active]
        reactions = seeker.respond([Dialogue(s.case.profile, s.turns) for s in now],
                                   [turn_seed(seed, s.case.id, turn, "seeker") for s in now])
        for state, text in zip(now, reactions):
            state.turns.append(Turn(speaker="seeker", text=text))
        judgements = critic.judge([Dialogue(s.case.profile, s.turns) for s in now])
        for state, j in zip(now, judgements):
            state.critic.append({"turn": turn, "score": j.score, "distribution": j.distribution,
                                 "invalid": j.invalid})
            if j.score is not None and j.score > threshold:
                state.success_turn = turn
        active = [i for i in active if states[i][1].success_turn is None]
        bar.update(1)
        bar.set_postfix(succeeded=len(states) - len(active), of=len(states))
    bar.close()
    return {system.name: [s.record(system.name, max_turns) for owner, s in states if owner is system]
            for system, _ in jobs}


def _system_turns(work: list[tuple[System, list[_State]]], turn: int, seed: int, safety) -> None:
    """Every active dialogue of every (system, dialogues) gets one supporter turn: the system's, or the
    safe reply when any of the seeker's messages is flagged. The systems answer through
    :func:`~rlff_esc.evaluate.systems.respond_together` (systems over one model in one call)."""
    asked, flagged, calls = [], [], []
    for system, states in work:
        seeker = [[t.text for t in s.turns if t.speaker == "seeker"] for s in states]
        screens = safety.screen(seeker) if safety and states else [None] * len(states)
        mine = [s for s, screen in zip(states, screens) if screen is None or screen.flag is None]
        flagged += [(s, screen, len(lines)) for s, screen, lines in zip(states, screens, seeker)
                    if screen is not None and screen.flag is not None]
        asked.append(mine)
        calls.append((system, [s.turns for s in mine], [turn_seed(seed, s.case.id, turn, "system") for s in mine]))
    for states, replies in zip(asked, respond_together(calls)):
        for state, reply in zip(states, replies):
            state.turns.append(Turn(speaker="supporter", text=reply.text, strategy=reply.note.get("strategy")))
            if reply.note:
                state.system_notes.append({"turn": turn, **reply.note})
    for state, screen, seeker_turns in flagged:
        follow_up = screen.follow_up(seeker_turns)
        state.turns.append(Turn(speaker="supporter", text=safety.safe_reply(screen.flag, follow_up)))
        if not follow_up:  # a flag is recorded once, at the turn it was raised
            state.safety.append({"turn": turn, **screen.flag.to_dict()})


def repetition(transcript: dict) -> float | None:
    """Share of the system's turns after its first that repeat one of its earlier turns in the same
    dialogue (:func:`rlff_esc.agents.seeker.similar`, the seeker's ``copied`` rule: equal or a difflib
    ratio of at least 0.8 once lower-cased and without punctuation). None when the system spoke fewer
    than two turns. Safe replies sent in the system's place are not its turns."""
    flagged = {f["turn"] for f in transcript["safety_flags"]}
    supporter = [t["text"] for t in transcript["turns"] if t["speaker"] == "supporter"]
    own = [text for turn, text in enumerate(supporter, 1) if turn not in flagged]
    if len(own) < 2:
        return None
    repeats = sum(any(similar(own[i], earlier) for earlier in own[:i]) for i in range(1, len(own)))
    return repeats / (len(own) - 1)


def outcome_statistics(transcripts: list[dict], max_turns: int) -> dict:
    """The protocol's metrics as bootstrap statistics over cases: SR, AvgT (a failure counts as
    ``max_turns``), SR within each turn (cumulative), the mean final critic score and the mean
    :func:`repetition` (over the dialogues with at least two system turns)."""
    from rlff_esc.stats import mean_of

    turns = [t["success_turn"] if t["success"] else max_turns for t in transcripts]
    stats = {"SR": mean_of([float(t["success"]) for t in transcripts]), "AvgT": mean_of(turns),
             "reward": mean_of([t["final_score"] for t in transcripts]),
             "repetition": mean_of([repetition(t) for t in transcripts])}
    for k in range(1, max_turns + 1):
        stats[f"SR@{k}"] = mean_of([float(t["success"] and t["success_turn"] <= k) for t in transcripts])
    return stats
