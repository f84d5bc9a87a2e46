"""Seeker simulators side by side on held-out ESConv dialogues: the prompted seeker and the grounded one.

Points: where a real seeker answered a supporter turn and the supporter spoke again
(:func:`held_out_points`), one per PPDPP valid or test dialogue (a seeded draw). For every seeker
model, at the same points:

* ``perplexity`` of the real seeker turns: exp(total negative log-likelihood / total tokens) of each
  real turn as the assistant's answer to the seeker prompt (:func:`rlff_esc.agents.seeker.seeker_prompt`,
  the same for every model), with a bootstrap 95% interval over points; models after the first get a
  paired difference against it (the same resampled points for both);
* the model's own turn there, from the seeker agent as simulation runs it (``simulate``'s sampling,
  re-sampling rules and history window), measured by:
  ``in_character`` and ``pairwise`` (:mod:`rlff_esc.agents.in_character`, whose held-out accuracy is
  reported beside them), ``words`` against the real turns' ``real_words``, and ``similarity``, the MiniLM
  cosine to the real answer at that point, against ``chance``, the mean cosine to the real answers at
  the other points;
* a few sample turns beside the real ones.

The report carries the sha256 of the drawn points (case ids and real turns), so that two reports can
be seen to measure the same points. Every interval comes from :mod:`rlff_esc.stats` (percentile bootstrap, seeded).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import numpy as np

from rlff_esc.agents.base import Dialogue
from rlff_esc.agents.in_character import InCharacterCheck, rate
from rlff_esc.agents.seeker import SeekerAgent, seeker_prompt
from rlff_esc.config import Config, ModelSpec
from rlff_esc.data.contexts import merge_runs, seeker_answers
from rlff_esc.data.schema import Case
from rlff_esc.stats import interval, mean_of, paired_test

log = logging.getLogger(__name__)

SAMPLES_SHOWN = 5


@dataclass
class Point:
    dialogue: Dialogue  # up to and including the supporter turn the seeker answers
    real: str  # what the real seeker answered
    supporter_next: str  # what the supporter said after that
    case_id: str


def held_out_points(cases: list[Case], n: int, seed: int = 13) -> list[Point]:
    """At most one point per case (a seeded draw among its points), then a seeded draw of ``n``."""
    rng = np.random.default_rng(seed)
    points = []
    for case in cases:
        turns = merge_runs(case.turns)
        at = [i for i in seeker_answers(turns) if i + 2 < len(turns)]
        if at:
            i = at[int(rng.integers(0, len(at)))]
            points.append(Point(Dialogue(profile=case.profile, turns=turns[: i + 1]), turns[i + 1].text,
                                turns[i + 2].text, case.id))
    if len(points) > n:
        points = [points[i] for i in sorted(rng.choice(len(points), size=n, replace=False))]
    return points


def real_turn_nll(backend, points: list[Point], max_history_turns: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the negative log-likelihood of the real seeker turn (nats) and its token count."""
    logprobs = backend.loglikelihood([(seeker_prompt(p.dialogue, max_history_turns), p.real) for p in points])
    tokens = [len(backend.tokenizer(p.real, add_special_tokens=False)["input_ids"]) for p in points]
    return -np.array(logprobs, dtype=float), np.array(tokens, dtype=float)


def perplexity_of(nll: np.ndarray, tokens: np.ndarray):
    """The corpus perplexity of the points picked by each row of an index matrix (a stats statistic)."""
    return lambda idx: np.exp(nll[idx].sum(1) / tokens[idx].sum(1))


def turn_figures(simulated: list[str], points: list[Point], check: InCharacterCheck, encoder, *,
                 samples: int, seed: int) -> dict:
    """How a model's turns at the points compare with the real ones (see the module docstring)."""
    real = [p.real for p in points]
    sim_vecs, real_vecs = encoder.encode(simulated), encoder.encode(real)
    cosine = sim_vecs @ real_vecs.T
    n = len(points)
    chance = (cosine.sum(1) - np.diag(cosine)) / max(1, n - 1)

    def ci(values):
        return interval(mean_of(values), n, samples=samples, seed=seed)

    return {"in_character": rate(check.in_character(simulated), samples, seed),
            "pairwise": rate(check.more_seeker_like(simulated, [p.supporter_next for p in points]), samples, seed),
            "words": ci([len(t.split()) for t in simulated]),
            "similarity": ci(np.diag(cosine)), "chance": ci(chance),
            "similarity_above_chance": ci(np.diag(cosine) - chance)}


def compare_seekers(config: Config, models: dict[str, ModelSpec], *, n: int = 200, samples: int = 1000) -> dict:
    """Every figure of the module docstring for each named seeker model; the first is the reference
    of the paired perplexity differences."""
    from rlff_esc.agents.embeddings import shared_encoder
    from rlff_esc.agents.validity import load_validation_data
    from rlff_esc.llm.registry import build_backend

    sim, seed = config.simulate, config.seed
    cases, _ = load_validation_data(config)
    check = InCharacterCheck().fit([c for c in cases if c.split == "train"])
    held_out = [c for c in cases if c.split in ("valid", "test")]
    points = held_out_points(held_out, n, seed)
    encoder = shared_encoder(sim.critic.learned_backbone)
    drawn = json.dumps([[p.case_id, p.real] for p in points]).encode()
    report: dict = {"points": len(points), "points_sha256": hashlib.sha256(drawn).hexdigest(),
                    "splits": ["valid", "test"], "data_split": config.data.split,
                    "seeker_settings": {"max_new_tokens": sim.max_new_tokens, "temperature": sim.temperature,
                                        "top_p": sim.top_p, "max_resamples": sim.max_resamples,
                                        "max_history_turns": sim.max_history_turns},
                    "in_character_check": check.evaluate(held_out, samples=samples, seed=seed),
                    "real": {"in_character": rate(check.in_character([p.real for p in points]), samples, seed),
                             "words": interval(mean_of([len(p.real.split()) for p in points]), len(points),
                                               samples=samples, seed=seed)},
                    "models": {}}
    statistics, reference = {}, next(iter(models))
    for name, spec in models.items():
        backend = build_backend(spec)
        log.info("seeker %s (%s): scoring %d real turns", name, spec.model, len(points))
        nll, tokens = real_turn_nll(backend, points, sim.max_history_turns)
        statistics[name] = perplexity_of(nll, tokens)
        agent = SeekerAgent(backend, max_new_tokens=sim.max_new_tokens, temperature=sim.temperature,
                            max_resamples=sim.max_resamples, top_p=sim.top_p, max_history_turns=sim.max_history_turns)
        log.info("seeker %s: answering at %d points", name, len(points))
        simulated = agent.respond([p.dialogue for p in points], [seed + i for i in range(len(points))])
        figures = {"model": spec.model,
                   "perplexity": interval(statistics[name], len(points), samples=samples, seed=seed),
                   "mean_nll_per_token": float(nll.sum() / tokens.sum()),
                   **turn_figures(simulated, points, check, encoder, samples=samples, seed=seed),
                   "agent_stats": dict(agent.stats),
                   "samples": [{"case_id": p.case_id, "supporter": p.dialogue.turns[-1].text, "real": p.real,
                                "simulated": s} for p, s in zip(points[:SAMPLES_SHOWN], simulated)]}
        if name != reference:
            figures["perplexity_minus_reference"] = paired_test(statistics[name], statistics[reference],
                                                                len(points), samples=samples, seed=seed)
        report["models"][name] = figures
    encoder.save()
    return report


def _ci(figure: dict, digits: int = 3) -> str:
    return f"{figure['value']:.{digits}f} [{figure['low']:.{digits}f}, {figure['high']:.{digits}f}]"


def format_comparison(report: dict) -> str:
    """The figures as plain text for a terminal or a note."""
    chk = report["in_character_check"]
    lines = [f"{report['points']} held-out points (ESConv {'+'.join(report['splits'])}, {report['data_split']} split); "
             f"seeker settings {report['seeker_settings']}",
             f"in-character check on {chk['n_pairs']} held-out exchanges: accuracy {_ci(chk['accuracy'])}, "
             f"real seeker turns in character {_ci(chk['seeker_recall'])}, supporter turns rejected "
             f"{_ci(chk['supporter_rejected'])}, pairwise {_ci(chk['pairwise_accuracy'])}",
             f"real seeker turns at the points: in character {_ci(report['real']['in_character'])}, "
             f"words {_ci(report['real']['words'], 1)}", ""]
    for name, m in report["models"].items():
        lines += [f"{name} ({m['model']}):",
                  f"  perplexity of the real turns {_ci(m['perplexity'], 2)}",
                  f"  in character {_ci(m['in_character'])}; more seeker-like than the supporter's next turn "
                  f"{_ci(m['pairwise'])}",
                  f"  words {_ci(m['words'], 1)}; MiniLM cosine to the real answer {_ci(m['similarity'])} vs "
                  f"chance {_ci(m['chance'])}",
                  f"  agent {m['agent_stats']}"]
        if "perplexity_minus_reference" in m:
            d = m["perplexity_minus_reference"]
            lines.append(f"  perplexity − {next(iter(report['models']))}: {d['delta']:+.2f} "
                         f"[{d['low']:+.2f}, {d['high']:+.2f}], p = {d['p']:.3g}")
        lines += [f"    supporter: {s['supporter']}\n      real: {s['real']}\n      {name}: {s['simulated']}"
                  for s in m["samples"][:3]]
    return "\n".join(lines)
