"""The ``simulate`` stage: K candidates per training context, each played forward and judged.

Reads ``<run>/contexts.jsonl`` (split ``simulate.contexts_split``), appends finished batches to
``<run>/trajectories.jsonl`` (or ``trajectories.shard-i-of-n.jsonl`` with a shard) and records the stage
in the manifest. Re-running resumes: trajectories already on disk are skipped, so a finished run
returns at once without loading a model, and a killed one continues where it stopped (see
:mod:`rlff_esc.simulate.store`). ``force=True`` starts the file over.

Rewards (see :mod:`rlff_esc.simulate.rewards`): every record holds ``final``, ``success`` and
``improvement``; ``simulate.reward`` (default ``improvement``) says which one the reward model trains on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from statistics import mean

from filelock import FileLock, Timeout
from tqdm import tqdm

from rlff_esc.agents.factory import build_critic
from rlff_esc.agents.seeker import SeekerAgent
from rlff_esc.agents.supporter import SupporterAgent
from rlff_esc.config import Config, ModelSpec
from rlff_esc.data.prepare import cap_contexts, read_contexts
from rlff_esc.errors import RlffError
from rlff_esc.jsonl import append_jsonl
from rlff_esc.llm.meter import MeteredBackend
from rlff_esc.llm.registry import build_backend
from rlff_esc.manifest import read_manifest, record_stage
from rlff_esc.seeds import stable_int
from rlff_esc.simulate.engine import Engine, Item
from rlff_esc.simulate.store import (check_inputs, in_shard, open_store, parse_shard, record_inputs,
                                     settings_fingerprint)
from rlff_esc.stages import folder_digest, model_inputs

log = logging.getLogger(__name__)

def policy_spec(config: Config) -> ModelSpec:
    """The model proposing candidates: ``simulate.policy_path`` when that folder exists (e.g. the SFT
    warm-up's output), else ``models.policy``."""
    spec = config.models.policy
    if config.simulate.policy_path:
        path = config.resolve(config.simulate.policy_path)
        if path.exists():
            return spec.model_copy(update={"backend": "local", "model": str(path.resolve())})
        log.warning("simulate.policy_path %s does not exist; candidates come from models.policy (%s)",
                    path, spec.model)
    return spec


def simulation_settings(config: Config, policy: ModelSpec) -> dict:
    """Everything that changes what a trajectory contains (batch sizes and replicas do not). Local
    models and the learned critic stand by the content of their weights, not their paths, so a
    retrained warm-up or critic does not pass for the one that simulated the file."""
    # futures is left out: it sets how many records there are, not what one contains (more futures
    # of a finished run resume it)
    sim = config.simulate.model_dump(mode="json", exclude={"batch_contexts", "contexts_split", "policy_path",
                                                           "max_contexts", "futures"})
    specs = {role: getattr(config.models, role) for role in ("seeker", "supporter", "critic")}
    specs["policy"] = policy
    models = {role: model_inputs(spec) for role, spec in specs.items()}
    if sim["critic"]["kind"] == "learned":
        models["critic"] = {"learned_weights": folder_digest(config.paths.learned_critic())}
    return {"simulate": sim, "models": models, "seed": config.seed,
            "policy": {"reasoning": config.policy.reasoning, "max_history_turns": config.policy.max_history_turns}}


def make_items(config: Config, contexts) -> list[Item]:
    """K candidates × F futures per context; a candidate's seed is a stable hash of the run seed, context
    id and candidate index, and its futures share it (see :class:`Item`)."""
    sim = config.simulate
    return [Item(c, k, stable_int(config.seed, c.id, k), f)
            for c in contexts for k in range(sim.candidates) for f in range(sim.futures)]


def context_batches(items: list[Item], batch_contexts: int) -> list[list[Item]]:
    """The items of ``batch_contexts`` contexts at a time. Batching by context, not by item count, keeps
    a resumed run's batches (say, only the futures added by a larger ``simulate.futures``) made of the
    same contexts as the first run's, so its candidates are generated in the same batches, identically."""
    by_context: dict[str, list[Item]] = {}
    for it in items:
        by_context.setdefault(it.context.id, []).append(it)
    groups = list(by_context.values())
    return [[it for group in groups[b:b + batch_contexts] for it in group]
            for b in range(0, len(groups), batch_contexts)]


def build_engine(config: Config, policy: ModelSpec, settings: str = "") -> Engine:
    sim = config.simulate
    metered: dict[int, MeteredBackend] = {}  # one meter per backend instance (roles may share one)

    def backend(spec: ModelSpec) -> MeteredBackend:
        b = build_backend(spec)
        return metered.setdefault(id(b), MeteredBackend(b))

    critic = build_critic(sim.critic, config)
    if getattr(critic, "backend", None) is not None:  # an LLM critic: meter its backend too
        critic.backend = metered.setdefault(id(critic.backend), MeteredBackend(critic.backend))
    seeker = SeekerAgent(backend(config.models.seeker), max_new_tokens=sim.max_new_tokens,
                         temperature=sim.temperature, top_p=sim.top_p, max_resamples=sim.max_resamples,
                         max_history_turns=sim.max_history_turns, persona=sim.seeker_persona)
    supporter = SupporterAgent(backend(config.models.supporter), reasoning=sim.supporter_reasoning,
                               max_new_tokens=sim.max_new_tokens, temperature=sim.temperature, top_p=sim.top_p,
                               max_history_turns=config.policy.max_history_turns)
    engine = Engine(policy=backend(policy), seeker=seeker, supporter=supporter, critic=critic,
                    horizon=sim.horizon, gamma=sim.gamma, success_threshold=sim.critic.success_threshold,
                    reasoning=config.policy.reasoning, candidate_max_new_tokens=sim.candidate_max_new_tokens,
                    temperature=sim.temperature, top_p=sim.top_p,
                    policy_history_turns=config.policy.max_history_turns, settings=settings)
    engine.meters = list(metered.values())
    return engine


def simulate(config: Config, shard: tuple[int, int] | str | None = None, force: bool = False) -> dict:
    start = time.perf_counter()
    sim = config.simulate
    if isinstance(shard, str):
        shard = parse_shard(shard)
    run = config.run_path
    contexts_file = config.paths.contexts
    if not contexts_file.exists():
        raise RlffError(f"{contexts_file} not found: run `rlff-esc data prepare` first")
    contexts = cap_contexts(read_contexts(contexts_file, sim.contexts_split), sim.max_contexts)
    contexts = [c for c in contexts if in_shard(c.id, shard)]
    if not contexts:
        raise RlffError(f"{contexts_file}: no contexts of split {sim.contexts_split!r} (simulate.contexts_split)"
                        + (f" in shard {shard[0]}/{shard[1]}" if shard else ""))
    out = config.paths.trajectories(shard)
    policy = policy_spec(config)
    inputs = simulation_settings(config, policy)
    settings = settings_fingerprint(inputs)
    try:
        lock = FileLock(str(out.with_name(f".{out.name}.lock")), timeout=0).acquire()
    except Timeout:
        raise RlffError(f"{out} is being written by another process; wait for it to finish, or give each "
                        "process its own --shard") from None
    with lock:
        if force and out.exists():
            out.unlink()
        check_inputs(out, settings, inputs)
        done = open_store(out, settings)
        items = make_items(config, contexts)
        todo = [it for it in items if it.key not in done]
        log.info("simulate: %d contexts × %d candidates × %d futures, horizon %d: %d trajectories, %d already in %s",
                 len(contexts), sim.candidates, sim.futures, sim.horizon, len(items), len(items) - len(todo), out)
        seeker_stats: Counter = Counter()
        supporter_stats: Counter = Counter()
        tokens, model_seconds = 0, 0.0
        if todo:
            record_inputs(out, settings, inputs)
            engine = build_engine(config, policy, settings)
            bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="traj", desc="simulate",
                       dynamic_ncols=True)
            started = time.perf_counter()
            engine.on_step = lambda step: bar.set_postfix_str(f"{_rate(engine, started)} · {step}")
            for batch in context_batches(todo, sim.batch_contexts):
                append_jsonl(out, engine.run(batch))
                bar.update(len(batch))
            bar.set_postfix_str(_rate(engine, started))
            bar.close()
            seeker_stats, supporter_stats = engine.seeker.stats, engine.supporter.stats
            tokens = sum(m.tokens for m in engine.meters)
            model_seconds = time.perf_counter() - started
        records = list(open_store(out, settings).values())
    summary = summarize(records, len(items))
    summary.update({
        "file": str(out), "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "written_now": len(todo), "already_done": len(items) - len(todo),
        "seeker_stats": dict(seeker_stats), "supporter_stats": dict(supporter_stats),
        "tokens": tokens, "tokens_per_s": round(tokens / model_seconds, 1) if model_seconds else None,
        "reward": sim.reward, "settings": settings,
    })
    stage = "simulate" if shard is None else f"simulate-shard-{shard[0]}-of-{shard[1]}"
    if todo or stage not in read_manifest(run).get("stages", {}):  # a finished file changes nothing
        record_stage(run, config, stage, time.perf_counter() - start, **summary)
    return summary


def _rate(engine: Engine, started: float) -> str:
    seconds = time.perf_counter() - started
    tokens = sum(m.tokens for m in engine.meters)
    return f"{tokens / seconds:.0f} tok/s" if seconds > 0 else "0 tok/s"


def summarize(records: list[dict], expected: int) -> dict:
    """Counts and reward means over the whole file (also the part written by earlier runs)."""
    critic = [c for r in records for c in r["critic"]]
    finals = [r["rewards"]["final"] for r in records if r["rewards"]["final"] is not None]
    candidates = {(r["context_id"], r["candidate"], r["seed"]): r for r in records}  # its futures share it
    return {
        "trajectories": len(records), "expected": expected, "complete": len(records) == expected,
        "contexts": len({r["context_id"] for r in records}),
        "candidates": len(candidates),
        "critic_judgements": len(critic),
        "critic_invalid_answers": sum(c["invalid"] for c in critic),
        "critic_unscored_judgements": sum(1 for c in critic if c["score"] is None),
        "seeker_resamples": sum(r["resamples"] for r in records),
        "well_formed_candidates": sum(1 for r in candidates.values() if r.get("well_formed")),
        "empty_replies": sum(1 for r in candidates.values() if not r["reply"]),
        "mean_final": round(mean(finals), 4) if finals else None,
        "success_rate": round(mean(r["rewards"]["success"] for r in records), 4) if records else None,
        "mean_improvement": round(mean(r["rewards"]["improvement"] for r in records), 4) if records else None,
    }

