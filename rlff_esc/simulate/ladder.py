"""The reward-chain ladder: for one context, does the chain seeker simulator → critic score a better
reply higher? That is the question GRPO asks of its reward, so it is checked before any reward is trusted.

For N held-out contexts (one per dialogue), candidates of known quality take the policy's place:

* ``gold``: ESConv's own supporter reply at that point;
* ``random``: the gold reply of another ladder dialogue (fluent, supportive-sounding, off-topic);
* ``generic``: bland empathy (:mod:`rlff_esc.ladder_replies`);
* ``dismissive``: a brush-off from the same module's written list.

Each is played forward by the simulation engine with the configured seeker, supporter, critic, horizon
and futures (only the candidate is fixed), and gets the reward the reward model would learn
(``simulate.reward``, the mean over its futures). Per context, a pair of kinds is ranked right when
the better kind's reward is higher (a tie counts half); pairwise accuracy is the mean over contexts,
with a bootstrap interval over contexts. A trained reward model can score the same replies, and so can
the seeker model's likelihood of fixed reactions (:mod:`rlff_esc.agents.reaction`), which needs no
sampling.

The trajectories go to ``<run>/ladder/trajectories.jsonl`` through the simulation store, so an
interrupted ladder resumes, and the figures to ``<run>/ladder/ladder.json``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from rlff_esc.config import Config
from rlff_esc.data.contexts import build_contexts
from rlff_esc.data.prepare import read_cases
from rlff_esc.data.schema import Context
from rlff_esc.errors import RlffError
from rlff_esc.jsonl import append_jsonl, write_json
from rlff_esc.ladder_replies import DISMISSIVE_REPLIES, GENERIC_REPLIES
from rlff_esc.seeds import stable_int
from rlff_esc.simulate.engine import Item
from rlff_esc.simulate.store import open_store, settings_fingerprint
from rlff_esc.stats import interval, mean_of

log = logging.getLogger(__name__)

KINDS = ("gold", "random", "generic", "dismissive")
# (better, worse): the orders a valid reward must reproduce
PAIRS = (("gold", "random"), ("gold", "dismissive"), ("random", "dismissive"), ("gold", "generic"),
         ("generic", "dismissive"))


def ladder_contexts(cases, n: int, seed: int, split: str = "valid") -> list[Context]:
    """One context per held-out dialogue, ``n`` of them, the dialogues in a seeded order: one per
    dialogue keeps the contexts independent. The context is a seeded choice from the middle half of
    the dialogue, where support is being given: the gold reply at the opening is a greeting and at
    the close a farewell ("Bye!"), neither of which is known-good support."""
    chosen = []
    for case in sorted((c for c in cases if c.split == split), key=lambda c: stable_int(seed, "ladder", c.id)):
        everything = build_contexts(case)
        middle = everything[len(everything) // 4: len(everything) - len(everything) // 4]
        options = [x for x in middle if x.gold_reply.strip()]
        if options:
            chosen.append(options[stable_int(seed, "ladder-context", case.id) % len(options)])
        if len(chosen) == n:
            break
    return chosen


def ladder_replies(contexts: list[Context], seed: int) -> dict[tuple[str, str], str]:
    """(context id, kind) → the candidate reply. ``random`` takes the gold reply of the next context
    in a seeded cycle through all of them, so no context gets its own dialogue's reply."""
    if len(contexts) < 2:
        raise RlffError("the ladder needs at least 2 contexts (random replies come from another dialogue)")
    cycle = sorted(range(len(contexts)), key=lambda i: stable_int(seed, "ladder-random", contexts[i].id))
    next_in_cycle = {cycle[k]: cycle[(k + 1) % len(cycle)] for k in range(len(cycle))}
    replies = {}
    for i, c in enumerate(contexts):
        replies[(c.id, "gold")] = c.gold_reply.strip()
        replies[(c.id, "random")] = contexts[next_in_cycle[i]].gold_reply.strip()
        replies[(c.id, "generic")] = GENERIC_REPLIES[stable_int(seed, "generic", c.id) % len(GENERIC_REPLIES)]
        replies[(c.id, "dismissive")] = DISMISSIVE_REPLIES[stable_int(seed, "dismissive", c.id) % len(DISMISSIVE_REPLIES)]
    return replies


def pairwise_accuracy(better: list[float], worse: list[float], *, samples: int, seed: int) -> dict:
    """Share of contexts where ``better`` scores higher (ties count half), with a bootstrap interval."""
    wins = [1.0 if b > w else 0.5 if b == w else 0.0 for b, w in zip(better, worse)]
    return interval(mean_of(wins), len(wins), samples=samples, seed=seed)


def ladder_figures(scores: dict[str, list[float]], *, samples: int, seed: int) -> dict:
    """Mean score per kind and pairwise accuracy per :data:`PAIRS`, both with bootstrap intervals;
    ``scores[kind][i]`` is context i's score."""
    kinds = [k for k in KINDS if k in scores]
    n = len(scores[kinds[0]])
    return {"n": n,
            "mean": {k: interval(mean_of(scores[k]), n, samples=samples, seed=seed) for k in kinds},
            "pairwise": {f"{b}>{w}": pairwise_accuracy(scores[b], scores[w], samples=samples, seed=seed)
                         for b, w in PAIRS if b in scores and w in scores}}


def _settings(config: Config, kinds: tuple[str, ...]) -> str:
    from rlff_esc.simulate.run import simulation_settings

    return settings_fingerprint({**simulation_settings(config, config.models.supporter), "ladder": list(kinds)})


def run_ladder(config: Config, n: int = 48, kinds: tuple[str, ...] = KINDS, reward_model: bool = True,
               reaction: bool = True, force: bool = False) -> dict:
    """Play the ladder forward (resuming ``<run>/ladder/trajectories.jsonl``) and write ``ladder.json``."""
    from rlff_esc.simulate.run import build_engine, context_batches

    start = time.perf_counter()
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise RlffError(f"ladder kinds: unknown {unknown}; known: {', '.join(KINDS)}")
    sim, paths = config.simulate, config.paths
    cases_file = paths.cases
    if not cases_file.exists():
        raise RlffError(f"{cases_file} not found: run `rlff-esc data prepare` first")
    contexts = ladder_contexts(read_cases(cases_file), n, config.seed)
    if len(contexts) < n:
        log.warning("ladder: only %d held-out dialogues with a gold reply (asked for %d)", len(contexts), n)
    replies = ladder_replies(contexts, config.seed)
    out_dir = paths.ladder
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "trajectories.jsonl"
    if force and out.exists():
        out.unlink()
    settings = _settings(config, tuple(kinds))
    done = open_store(out, settings)
    items = [Item(c, candidate=KINDS.index(kind), seed=stable_int(config.seed, "ladder", c.id), future=f,
                  reply=replies[(c.id, kind)])
             for c in contexts for kind in kinds for f in range(sim.futures)]
    todo = [it for it in items if it.key not in done]
    log.info("ladder: %d contexts × %d kinds × %d futures, horizon %d: %d trajectories, %d already done",
             len(contexts), len(kinds), sim.futures, sim.horizon, len(items), len(items) - len(todo))
    if todo:
        from tqdm import tqdm

        # the policy is never asked (every candidate is fixed): the supporter's model stands in
        engine = build_engine(config, config.models.supporter, settings)
        with tqdm(total=len(items), initial=len(items) - len(todo), unit="traj", desc="ladder") as bar:
            engine.on_step = bar.set_postfix_str
            for batch in context_batches(todo, sim.batch_contexts):
                append_jsonl(out, engine.run(batch))
                bar.update(len(batch))
    records = open_store(out, settings)
    rewards: dict[tuple[str, int], list[float]] = {}
    for it in items:
        rewards.setdefault((it.context.id, it.candidate), []).append(records[it.key]["rewards"][sim.reward])
    chain = {k: [float(np.mean(rewards[(c.id, KINDS.index(k))])) for c in contexts] for k in kinds}
    samples = config.evaluate.bootstrap_samples
    report = {"chain": ladder_figures(chain, samples=samples, seed=config.seed),
              "settings": {"reward": sim.reward, "horizon": sim.horizon, "futures": sim.futures,
                           "seeker": config.models.seeker.model, "seeker_persona": sim.seeker_persona,
                           "supporter": config.models.supporter.model,
                           "critic": sim.critic.kind if sim.critic.kind == "learned" else
                           f"llm:{config.models.critic.model} ({sim.critic.scoring})"},
              "examples": [{"context_id": c.id, **{k: {"reply": replies[(c.id, k)], "reward": chain[k][i]}
                                                   for k in kinds}} for i, c in enumerate(contexts[:3])]}
    if reward_model:
        report["reward_model"] = _reward_model_figures(config, contexts, replies, kinds, samples)
    if reaction:
        report["reaction"] = _reaction_figures(config, contexts, replies, kinds, samples)
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_json(out_dir / "ladder.json", report)
    return report


def _reward_model_figures(config: Config, contexts, replies, kinds, samples: int) -> dict | None:
    """The trained reward model's scores of the same replies (None when there is no reward model)."""
    from rlff_esc.policy.rewards import load_scorer

    if not config.paths.scorer.exists():
        log.info("ladder: no reward model at %s; scoring only the chain", config.paths.scorer)
        return None
    scorer = load_scorer(config)
    scores = {k: [float(s) for s in scorer.score([c.history for c in contexts],
                                                 [replies[(c.id, k)] for c in contexts])] for k in kinds}
    return {**ladder_figures(scores, samples=samples, seed=config.seed), "path": str(config.paths.scorer)}


def _reaction_figures(config: Config, contexts, replies, kinds, samples: int) -> dict:
    """The seeker model's reaction scores of the same replies, prompted as the simulation's seeker."""
    from rlff_esc.agents.base import Dialogue
    from rlff_esc.agents.reaction import reaction_scores
    from rlff_esc.data.schema import Turn
    from rlff_esc.llm.registry import build_backend

    sim = config.simulate
    backend = build_backend(config.models.seeker)
    dialogues = [Dialogue(c.profile, list(c.history) + [Turn(speaker="supporter", text=replies[(c.id, k)])])
                 for k in kinds for c in contexts]
    flat = reaction_scores(backend, dialogues, max_history_turns=sim.max_history_turns, persona=sim.seeker_persona)
    scores = {k: flat[i * len(contexts):(i + 1) * len(contexts)] for i, k in enumerate(kinds)}
    return ladder_figures(scores, samples=samples, seed=config.seed)


def format_ladder(report: dict) -> str:
    """Markdown tables of a ladder report: mean reward per kind, then pairwise accuracy."""
    def cell(x: dict | None, digits: int = 3) -> str:
        if not x or x.get("value") is None:
            return "–"
        return f"{x['value']:.{digits}f} [{x['low']:.{digits}f}, {x['high']:.{digits}f}]"

    s = report["settings"]
    lines = [f"Reward-chain ladder on {report['chain']['n']} held-out contexts: seeker {s['seeker']} "
             f"({s['seeker_persona']}), critic {s['critic']}, horizon {s['horizon']}, {s['futures']} future(s), "
             f"reward `{s['reward']}`.", ""]
    scorers = [("chain", report["chain"])] + [(name, report[key]) for key, name in
                                              (("reward_model", "reward model"), ("reaction", "seeker reaction"))
                                              if report.get(key)]
    lines += ["| scorer | " + " | ".join(report["chain"]["mean"]) + " |",
              "|---|" + "---|" * len(report["chain"]["mean"])]
    lines += [f"| {name} | " + " | ".join(cell(f["mean"][k]) for k in f["mean"]) + " |" for name, f in scorers]
    lines += ["", "| scorer | " + " | ".join(report["chain"]["pairwise"]) + " |",
              "|---|" + "---|" * len(report["chain"]["pairwise"])]
    lines += [f"| {name} | " + " | ".join(cell(f["pairwise"][p], 2) for p in f["pairwise"]) + " |"
              for name, f in scorers]
    return "\n".join(lines)
