"""How far the agents can be trusted, measured against what people reported and wrote.

Critic validity (any :class:`~rlff_esc.agents.base.Critic`), on the ESConv valid and test dialogues
whose seekers reported their emotion intensity before and after the chat:

* ``spearman``: rank correlation between the critic's score of the real dialogue and the reported
  improvement (initial − final intensity), with a bootstrap 95% interval;
* ``auc``: how well the score separates dialogues whose seekers improved by ≥ 2 points from
  conversations that did not improve. ESConv's kept dialogues all improved, so the non-improvers are
  the held-out half of the failed conversations (:func:`~rlff_esc.agents.learned_critic.split_failed`)
  whose survey reports no drop (improvement ≤ 0);
* ``progress``: the share of dialogues the critic scores above their own first half, and the mean
  difference (whole − first half): a critic that cannot see progress cannot reward it;
* ``length_spearman``: correlation of the score with mean seeker-turn length, the trivial confound
  (:func:`length_baseline` scores every dialogue by that length, for comparison).

Seeker realism: a role classifier's in-character rate on simulated seeker turns, and their length and
MiniLM similarity to the real seeker turns at the same points of the same cases (:func:`seeker_realism`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rlff_esc.agents.base import Critic, Dialogue
from rlff_esc.agents.learned_critic import improvement, seeker_texts, split_failed
from rlff_esc.data.contexts import merge_runs, seeker_answers
from rlff_esc.data.schema import Case, Turn
from rlff_esc.jsonl import read_json
from rlff_esc.stats import auc, groups_interval

log = logging.getLogger(__name__)


@dataclass
class ValiditySet:
    """Dialogues with both intensity reports (``kept``) and held-out non-improvers (``failed``)."""

    kept: list[Case]
    failed: list[Case]

    @property
    def improvements(self) -> np.ndarray:
        return np.array([improvement(c) for c in self.kept])


def validity_set(cases: list[Case], failed: list[Case], splits=("valid", "test")) -> ValiditySet:
    kept = [c for c in cases if c.split in splits and improvement(c) is not None]
    held_out = split_failed(failed)[1]
    did_not_improve = [c for c in held_out if improvement(c) is not None and improvement(c) <= 0]
    return ValiditySet(kept=kept, failed=did_not_improve)


def subsample(vset: ValiditySet, n: int | None, seed: int = 13) -> ValiditySet:
    """At most ``n`` kept dialogues (a seeded random draw); the failed ones are all kept."""
    if n is None or n >= len(vset.kept):
        return vset
    rng = np.random.default_rng(seed)
    idx = sorted(rng.choice(len(vset.kept), size=n, replace=False))
    return ValiditySet(kept=[vset.kept[i] for i in idx], failed=vset.failed)


def as_dialogue(case: Case, turns: list[Turn] | None = None) -> Dialogue:
    return Dialogue(profile=case.profile, turns=list(case.turns if turns is None else turns))


def first_half(case: Case) -> Dialogue:
    return as_dialogue(case, case.turns[: max(1, len(case.turns) // 2)])


def mean_seeker_length(turns: list[Turn]) -> float:
    texts = seeker_texts(turns)
    return float(np.mean([len(t.split()) for t in texts])) if texts else 0.0


def _bootstrap(stat, arrays: list[np.ndarray]) -> list[float] | None:
    ci = groups_interval(stat, arrays, samples=1000, seed=0)
    return [round(v, 3) for v in ci] if ci else None


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y)[0])


def score_figures(kept_scores: np.ndarray, failed_scores: np.ndarray, improvements: np.ndarray,
                  half_scores: np.ndarray | None = None, lengths: np.ndarray | None = None) -> dict:
    """Validity figures from scores already computed (NaN = the critic gave no answer)."""
    from scipy.stats import spearmanr

    ok = np.isfinite(kept_scores)
    s, imp = kept_scores[ok], improvements[ok]
    pos = s[imp >= 2]
    neg = failed_scores[np.isfinite(failed_scores)]
    out = {"n": int(ok.sum()), "unanswered": int((~ok).sum()) + int((~np.isfinite(failed_scores)).sum())}
    rho, p = spearmanr(s, imp) if len(s) >= 3 and np.ptp(s) > 0 else (float("nan"), float("nan"))
    out["spearman"] = round(float(rho), 3)
    out["spearman_p"] = float(f"{p:.2g}")
    out["spearman_ci95"] = _bootstrap(lambda pairs: _spearman(pairs[:, 0], pairs[:, 1]), [np.stack([s, imp], 1)])
    out["auc"] = round(auc(pos, neg), 3)
    out["auc_ci95"] = _bootstrap(auc, [pos, neg]) if len(pos) and len(neg) else None
    out["auc_n"] = {"improved_by_2+": int(len(pos)), "did_not_improve": int(len(neg))}
    if half_scores is not None:
        both = ok & np.isfinite(half_scores)
        diff = kept_scores[both] - half_scores[both]
        out["progress"] = {"whole_above_half": round(float(np.mean(diff > 0)), 3),
                           "mean_difference": round(float(np.mean(diff)), 3), "n": int(both.sum())}
    if lengths is not None:
        out["length_spearman"] = round(_spearman(s, lengths[ok]), 3)
    out["success_rate"] = {"kept": round(float(np.mean(s > 0.5)), 3),
                           "failed": round(float(np.mean(neg > 0.5)), 3) if len(neg) else None}
    return out


def _scores(critic: Critic, dialogues: list[Dialogue], batch_size: int = 32) -> np.ndarray:
    from tqdm.auto import tqdm

    out = []
    for b in tqdm(range(0, len(dialogues), batch_size), desc=f"judging ({critic.name})", leave=False):
        out += [np.nan if j.score is None else j.score for j in critic.judge(dialogues[b: b + batch_size])]
    return np.array(out, dtype=float)


def critic_validity(critic: Critic, vset: ValiditySet, batch_size: int = 32) -> dict:
    """All critic figures for one critic on one validity set."""
    whole = _scores(critic, [as_dialogue(c) for c in vset.kept], batch_size)
    half = _scores(critic, [first_half(c) for c in vset.kept], batch_size)
    failed = _scores(critic, [as_dialogue(c) for c in vset.failed], batch_size)
    lengths = np.array([mean_seeker_length(c.turns) for c in vset.kept])
    result = score_figures(whole, failed, vset.improvements, half, lengths)
    return {"critic": critic.name, **result}


def length_baseline(vset: ValiditySet) -> dict:
    """The trivial critic: mean seeker-turn length in words (longer = better)."""
    whole = np.array([mean_seeker_length(c.turns) for c in vset.kept])
    half = np.array([mean_seeker_length(first_half(c).turns) for c in vset.kept])
    failed = np.array([mean_seeker_length(c.turns) for c in vset.failed])
    result = score_figures(whole, failed, vset.improvements, half, whole)
    result.pop("success_rate")
    return {"critic": "baseline:mean-seeker-turn-length", **result}


# -- seeker realism --------------------------------------------------------------------------------

def realism_points(cases: list[Case], n: int, seed: int = 13) -> list[tuple[Dialogue, str, str]]:
    """Points where a real seeker answered a real supporter turn: (the dialogue up to and including
    that supporter turn, the real seeker answer, case id); consecutive turns of a speaker are merged
    as the simulation sees them. A seeded draw of ``n`` points, at most one per case where possible."""
    rng = np.random.default_rng(seed)
    per_case = []
    for case in cases:
        turns = merge_runs(case.turns)
        at = seeker_answers(turns)
        if at:
            i = at[int(rng.integers(0, len(at)))]
            per_case.append((Dialogue(profile=case.profile, turns=turns[: i + 1]), turns[i + 1].text, case.id))
    if len(per_case) > n:
        per_case = [per_case[i] for i in sorted(rng.choice(len(per_case), size=n, replace=False))]
    return per_case


def seeker_realism(simulated: list[str], real: list[str], classifier, encoder, seed: int = 13) -> dict:
    """Paired figures: ``simulated[i]`` and ``real[i]`` answer the same supporter turn of the same case.

    ``similarity_same`` is the mean MiniLM cosine of each simulated turn to its real counterpart,
    ``similarity_shuffled`` the same against a real turn from another point (a floor to read it by),
    and ``similarity_real_shuffled`` that floor for real turns among themselves."""
    sim_vecs, real_vecs = encoder.encode(simulated), encoder.encode(real)
    rng = np.random.default_rng(seed)
    perm = np.roll(np.arange(len(real)), 1 + int(rng.integers(0, max(1, len(real) - 1))))
    return {
        "n": len(simulated),
        "in_character_rate": round(classifier.in_character_rate(simulated), 3),
        "in_character_rate_real": round(classifier.in_character_rate(real), 3),
        "mean_words_simulated": round(float(np.mean([len(t.split()) for t in simulated])), 1),
        "mean_words_real": round(float(np.mean([len(t.split()) for t in real])), 1),
        "similarity_same": round(float(np.mean(np.sum(sim_vecs * real_vecs, 1))), 3),
        "similarity_shuffled": round(float(np.mean(np.sum(sim_vecs * real_vecs[perm], 1))), 3),
        "similarity_real_shuffled": round(float(np.mean(np.sum(real_vecs * real_vecs[perm], 1))), 3),
    }


def trajectory_seeker_realism(trajectories: list[dict], cases: list[Case], classifier, encoder) -> dict:
    """Seeker turns a simulation run wrote (``future`` turns by the seeker) against the real seeker
    turns of the same cases: in-character rate, length, and the cosine of each case's mean simulated
    turn to its mean real turn (``similarity_same_case``) against another case's (``..._other_case``)."""
    by_id = {c.id: c for c in cases}
    simulated: dict[str, list[str]] = {}
    for t in trajectories:
        if t.get("case_id") in by_id:
            simulated.setdefault(t["case_id"], []).extend(
                f["text"] for f in t.get("future", []) if f.get("speaker") == "seeker" and f.get("text"))
    ids = [i for i, texts in simulated.items() if texts]
    if not ids:
        return {"n": 0}
    sim_texts = [x for i in ids for x in simulated[i]]
    real_by_case = [[t.text for t in merge_runs(by_id[i].turns) if t.speaker == "seeker"] for i in ids]

    def centroids(groups):
        flat = encoder.encode([x for g in groups for x in g])
        out, start = [], 0
        for g in groups:
            v = flat[start:start + len(g)].mean(0)
            out.append(v / (np.linalg.norm(v) or 1.0))
            start += len(g)
        return np.stack(out)

    sim_c, real_c = centroids([simulated[i] for i in ids]), centroids(real_by_case)
    other = np.roll(np.arange(len(ids)), 1)
    return {
        "n_turns": len(sim_texts), "n_cases": len(ids),
        "in_character_rate": round(classifier.in_character_rate(sim_texts), 3),
        "mean_words_simulated": round(float(np.mean([len(x.split()) for x in sim_texts])), 1),
        "mean_words_real": round(float(np.mean([len(x.split()) for g in real_by_case for x in g])), 1),
        "similarity_same_case": round(float(np.mean(np.sum(sim_c * real_c, 1))), 3),
        "similarity_other_case": round(float(np.mean(np.sum(sim_c * real_c[other], 1))), 3),
    }


def load_validation_data(config) -> tuple[list[Case], list[Case]]:
    """The configured dataset's cases and the failed ESConv conversations (empty when absent)."""
    from rlff_esc.agents.learned_critic import failed_path
    from rlff_esc.data.esconv import read_raw
    from rlff_esc.data.prepare import load_cases

    result, _ = load_cases(config)
    path = failed_path(config)
    return result.cases, (read_raw(path).cases if path else [])


def validate_agents(config, *, critics: tuple[str, ...] = ("learned", "llm"), n_llm: int | None = 120,
                    n_seeker: int = 48, role_per_role: int = 3000, trajectories_path=None) -> dict:
    """Every validity figure for the configured critics and seeker (see the module docstring).

    The learned critic is judged on all valid+test dialogues with both reports; LLM critics, being
    slow on CPU, on a seeded draw of ``n_llm`` of them (the held-out failed ones always in full)."""
    import time

    from rlff_esc.agents.embeddings import shared_encoder
    from rlff_esc.agents.factory import build_critic
    from rlff_esc.agents.learned_critic import train_learned_critic
    from rlff_esc.agents.role_classifier import RoleClassifier
    from rlff_esc.config import CriticSection
    from rlff_esc.jsonl import iter_jsonl

    cases, failed = load_validation_data(config)
    vset = validity_set(cases, failed)
    report: dict = {"validity_set": {"kept": len(vset.kept), "failed_did_not_improve": len(vset.failed),
                                     "splits": ["valid", "test"], "data_split": config.data.split},
                    "critics": [length_baseline(vset)]}
    built: dict[str, Critic] = {}
    for kind in critics:
        start = time.perf_counter()
        if kind == "learned":
            cfg = config.simulate.critic.model_copy(update={"kind": "learned"})
            if not cfg.learned_path:
                train_learned_critic(config)
            critic, sample = build_critic(cfg, config), vset
        else:
            cfg = CriticSection(kind="llm", scoring="logprob",
                               max_history_turns=config.simulate.critic.max_history_turns)
            critic, sample = build_critic(cfg, config), subsample(vset, n_llm, config.seed)
        log.info("validating critic %s on %d + %d dialogues", critic.name, len(sample.kept), len(sample.failed))
        built[kind] = critic
        figures = critic_validity(critic, sample)
        figures["seconds"] = round(time.perf_counter() - start, 1)
        report["critics"].append(figures)
        if sample is not vset:  # the others on the same draw, so that the figures read side by side
            draw = f"(n={len(sample.kept)} draw)"
            report["critics"].append({**length_baseline(sample), "critic": f"baseline:length {draw}"})
            if "learned" in built:
                learned = critic_validity(built["learned"], sample)
                report["critics"].append({**learned, "critic": f"{learned['critic']} {draw}"})

    encoder = shared_encoder(config.simulate.critic.learned_backbone)
    classifier = RoleClassifier(encoder).fit([c for c in cases if c.split == "train"], role_per_role)
    report["role_classifier"] = classifier.evaluate([c for c in cases if c.split in ("valid", "test")],
                                                    role_per_role // 3)
    if n_seeker:
        report["seeker"] = simulated_seeker_realism(config, cases, classifier, encoder, n_seeker)
    if trajectories_path and trajectories_path.exists():
        trajectories = [obj for _, obj in iter_jsonl(trajectories_path) if isinstance(obj, dict)]
        report["trajectories_seeker"] = trajectory_seeker_realism(trajectories, cases, classifier, encoder)
        report["trajectories_seeker"]["path"] = str(trajectories_path)
    ladder = config.paths.ladder / "ladder.json"
    if ladder.exists():  # the reward chain on known-quality replies (`rlff-esc agents ladder`)
        report["ladder"] = read_json(ladder)
    encoder.save()
    return report


def simulated_seeker_realism(config, cases: list[Case], classifier, encoder, n: int) -> dict:
    """Run the configured seeker agent (with its re-sampling) at ``n`` real points of valid/test
    dialogues and compare its turns with what the real seekers wrote there."""
    from rlff_esc.agents.seeker import SeekerAgent
    from rlff_esc.llm.registry import build_backend

    sim = config.simulate
    points = realism_points([c for c in cases if c.split in ("valid", "test")], n, config.seed)
    agent = SeekerAgent(build_backend(config.models.seeker), max_new_tokens=sim.max_new_tokens,
                        temperature=sim.temperature, max_resamples=sim.max_resamples, top_p=sim.top_p,
                        max_history_turns=sim.max_history_turns)
    log.info("simulating %d seeker turns with %s", len(points), agent.name)
    simulated = agent.respond([p[0] for p in points], [config.seed + i for i in range(len(points))])
    figures = seeker_realism(simulated, [p[1] for p in points], classifier, encoder, config.seed)
    figures.update(seeker=config.models.seeker.model, agent_stats=dict(agent.stats),
                   examples=[{"case_id": p[2], "simulated": s, "real": p[1]} for p, s in zip(points[:3], simulated)])
    return figures


def format_report(report: dict) -> str:
    """The figures as a plain-text table a person can read in a terminal or paste in a note."""
    lines = [f"validity set: {report['validity_set']['kept']} ESConv {'+'.join(report['validity_set']['splits'])} "
             f"dialogues with both intensity reports ({report['validity_set']['data_split']} split); "
             f"{report['validity_set']['failed_did_not_improve']} held-out failed conversations that did not improve",
             "",
             f"{'critic':<44} {'n':>4} {'spearman [95% CI]':>22} {'AUC≥2 vs none [95% CI]':>26} "
             f"{'whole>half':>10} {'Δ':>6} {'ρ(len)':>7} {'SR kept/failed':>15}"]
    for c in report["critics"]:
        prog = c.get("progress", {})
        sr = c.get("success_rate")
        sr_text = f"{sr['kept']:.2f}/{sr['failed']:.2f}" if sr and sr.get("failed") is not None else "-"
        auc_ci = c.get("auc_ci95") or ["nan", "nan"]
        lines.append(
            f"{c['critic'][:44]:<44} {c['n']:>4} "
            f"{c['spearman']:>+6.3f} [{c['spearman_ci95'][0]:+.2f},{c['spearman_ci95'][1]:+.2f}]"
            f"{'':>3} {c['auc']:>6.3f} [{auc_ci[0]},{auc_ci[1]}]{'':>5} "
            f"{prog.get('whole_above_half', float('nan')):>10.2f} {prog.get('mean_difference', float('nan')):>+6.2f} "
            f"{c.get('length_spearman', float('nan')):>+7.2f} {sr_text:>15}")
    if "role_classifier" in report:
        r = report["role_classifier"]
        lines += ["", f"role classifier (MiniLM + logistic regression): held-out accuracy {r['heldout_accuracy']:.3f} "
                  f"(seeker recall {r['seeker_recall']:.3f}, supporter recall {r['supporter_recall']:.3f}, n={r['n']})"]
    if "seeker" in report:
        s = report["seeker"]
        lines += [f"seeker {s['seeker']} at {s['n']} real points: in-character {s['in_character_rate']:.3f} "
                  f"(real seekers {s['in_character_rate_real']:.3f}); words {s['mean_words_simulated']} vs real "
                  f"{s['mean_words_real']}; MiniLM cosine to the real answer {s['similarity_same']:.3f} "
                  f"(shuffled {s['similarity_shuffled']:.3f}; real vs shuffled real {s['similarity_real_shuffled']:.3f}); "
                  f"agent {s['agent_stats']}"]
    if report.get("trajectories_seeker", {}).get("n_cases"):
        t = report["trajectories_seeker"]
        lines += [f"seeker turns in {t['path']}: {t['n_turns']} turns / {t['n_cases']} cases: in-character "
                  f"{t['in_character_rate']:.3f}; words {t['mean_words_simulated']} vs real {t['mean_words_real']}; "
                  f"case-mean cosine same case {t['similarity_same_case']:.3f} vs other case {t['similarity_other_case']:.3f}"]
    if "ladder" in report:
        from rlff_esc.simulate.ladder import format_ladder

        lines += ["", format_ladder(report["ladder"])]
    return "\n".join(lines)
