"""``evaluate``: every system through the same cases and contexts, then paired tests and the report.

Per system, ``<run>/eval/<system>/`` holds ``transcripts.jsonl`` (interactive dialogues with per-turn
critic scores), ``replies.jsonl`` (replies to the test contexts with their metrics and judge ratings)
and ``metrics.json`` (with bootstrap intervals and a fingerprint of the inputs). The systems go through
the interactive protocol side by side (``evaluate.systems_together`` at a time), then each answers the
test contexts. Cases go ``evaluate.batch_cases`` at a time, contexts ``evaluate.quality_batch``, and
each finished batch is appended (fsync'd) to a ``*.partial.jsonl`` file per system named by its
fingerprint: a killed evaluation continues with the next batch, with the same seeds, so with the same
results. A system whose fingerprint is unchanged is not run again unless ``force``.
``<run>/eval/metrics.json`` combines all systems with the paired tests against ``evaluate.compare_to``
(``comparison.py``); ``<run>/report.md`` shows them. A re-run whose inputs (systems' weights included) are all unchanged
writes nothing (``eval/stage.json``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm import tqdm

from rlff_esc.config import Config
from rlff_esc.data.prepare import read_contexts
from rlff_esc.errors import DataError, RlffError
from rlff_esc.evaluate import judge as judging
from rlff_esc.evaluate.comparison import combine
from rlff_esc.evaluate.interactive import evaluation_cases, outcome_statistics, run_dialogues
from rlff_esc.evaluate.quality import add_similarity, generate_replies, quality_statistics
from rlff_esc.evaluate.systems import MODEL_FOLDERS, PromptedSystem, build_systems, system_names
from rlff_esc.jsonl import append_jsonl, read_json, read_jsonl, repair_partial_line, write_json, write_jsonl
from rlff_esc.manifest import record_stage
from rlff_esc.stages import MARKER, fingerprint, folder_digest, is_done, mark_done, model_inputs, read_marker
from rlff_esc.stats import interval

log = logging.getLogger(__name__)


class Agents:
    """Seeker, critic, safety layer, judge and encoder, built on first use: a re-run in which every
    system is already evaluated loads no model. Benchmarks run the protocol with them too."""

    def __init__(self, config: Config):
        self.config = config
        self._cache: dict = {}

    def _get(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @property
    def seeker(self):
        from rlff_esc.agents.seeker import SeekerAgent
        from rlff_esc.llm.registry import build_backend

        ev = self.config.evaluate
        return self._get("seeker", lambda: SeekerAgent(
            build_backend(self.config.models.seeker), max_new_tokens=ev.seeker_max_new_tokens,
            temperature=ev.seeker_temperature, max_resamples=self.config.simulate.max_resamples,
            persona=ev.seeker_persona))

    @property
    def critic(self):
        from rlff_esc.agents.factory import build_critic

        return self._get("critic", lambda: build_critic(self.config.evaluate.critic, self.config))

    @property
    def safety(self):
        from rlff_esc.safety.layer import SafetyLayer

        return self._get("safety", lambda: SafetyLayer.from_config(self.config.serve.safety, self.config.base_dir)
                         if self.config.evaluate.safety else None)

    @property
    def judge(self):
        from rlff_esc.llm.registry import build_backend

        return self._get("judge", lambda: build_backend(self.config.models.judge))

    @property
    def encoder(self):
        from rlff_esc.agents.embeddings import sentence_encoder

        return self._get("encoder", lambda: sentence_encoder("embedded:minilm", 256))


def evaluate(config: Config, systems: list | None = None, force: bool = False, progress: bool = True) -> dict:
    """Evaluate ``systems`` (names, ``name=path`` strings or System objects; default
    ``evaluate.systems``) and write the combined metrics and the report. Returns the combined metrics."""
    start = time.perf_counter()
    ev, paths = config.evaluate, config.paths
    cases, cases_source = evaluation_cases(config)
    contexts = _quality_contexts(config) if ev.quality else []
    inputs = _shared_inputs(config, cases, contexts)
    stage_inputs = _stage_inputs(config, inputs) if systems is None else None
    marker = paths.eval / MARKER
    if stage_inputs and not force and is_done(marker, fingerprint(stage_inputs)):
        log.info("evaluation already done with these inputs and systems: %s", paths.eval / "metrics.json")
        return {**read_json(paths.eval / "metrics.json"), "report": read_marker(marker)["report"]}
    objects = [s for s in systems or [] if not isinstance(s, str)]
    names = [s for s in systems or [] if isinstance(s, str)]
    built, unavailable = build_systems(config, names) if names or not objects else ([], {})
    agents = Agents(config)
    evaluated, todo = {}, []
    for system in objects + built:
        previous = _read_metrics(paths.eval_system(system.name))
        if previous.get("fingerprint") == _fingerprint(inputs, system) and not force:
            log.info("%s: already evaluated with the same inputs (%s); skipped", system.name,
                     paths.eval_system(system.name))
            evaluated[system.name] = previous
        else:
            todo.append(system)
    size = ev.systems_together or len(todo) or 1
    for group in (todo[i:i + size] for i in range(0, len(todo), size)):
        evaluated.update(_evaluate_group(config, group, cases, cases_source, contexts, agents, inputs, progress))
    _add_earlier(paths.eval, evaluated, fingerprint(inputs), skip=set(unavailable))
    combined = combine(config, evaluated, unavailable)
    write_json(paths.eval / "metrics.json", combined)
    from rlff_esc.evaluate.report import write_report

    report = write_report(config, combined)
    combined["report"] = str(report)
    if stage_inputs:
        mark_done(marker, fingerprint(stage_inputs), stage_inputs, report=str(report))
    seconds = time.perf_counter() - start
    record_stage(paths.root, config, "evaluate", seconds, systems=list(evaluated), unavailable=list(unavailable),
                 cases=len(cases), contexts=len(contexts), report=str(report))
    log.info("evaluation done in %.0f s; report: %s", seconds, report)
    return combined


def _stage_inputs(config: Config, inputs: dict) -> dict:
    """What the whole stage's outputs depend on, known without loading a model: the shared inputs, the
    systems, the one they are compared to and the weights of every model they would load (a missing one
    counts as missing)."""
    ev, paths = config.evaluate, config.paths
    folders = {name: paths.root / folder for name, (folder, _) in MODEL_FOLDERS.items()}
    folders.update({name: config.resolve(entry.path.replace("{run}", str(paths.root)))
                    for name, entry in ev.policies.items()})
    folders.update({name: Path(raw.replace("{run}", str(paths.root)))
                    for name, _, raw in (n.partition("=") for n in ev.systems) if raw})
    return {"shared": inputs, "systems": system_names(config), "compare_to": ev.compare_to,
            "policies": {k: v.model_dump(mode="json") for k, v in ev.policies.items()},
            "base_model": model_inputs(config.models.policy), "planner": ev.planner.model_dump(mode="json"),
            "weights": {name: folder_digest(path) for name, path in folders.items()},
            "policy_settings": config.policy.model_dump(mode="json", include={"reasoning", "max_history_turns"})}


def _quality_contexts(config: Config):
    path = config.paths.contexts
    if not path.exists():
        raise RlffError(f"{path} is missing: run `rlff-esc data prepare` first (or set evaluate.quality: false)")
    contexts = read_contexts(path, split="test")
    if not contexts:
        raise RlffError(f"{path}: no test contexts for the response-quality metrics (set evaluate.quality: false)")
    limit = config.evaluate.quality_max_contexts
    return contexts[:limit] if limit else contexts


def _shared_inputs(config: Config, cases, contexts) -> dict:
    """Everything besides the system that decides a system's results (not which system the others are
    compared to, nor how many run side by side: changing those runs no system again)."""
    ev = config.evaluate
    critic_files = folder_digest(config.paths.learned_critic(ev.critic)) if ev.critic.kind == "learned" else None
    return {
        "evaluate": ev.model_dump(mode="json", exclude={"systems", "policies", "planner", "batch_cases",
                                                        "quality_batch", "systems_together",
                                                        "reference_max_contexts", "compare_to"}),
        "seeker": model_inputs(config.models.seeker),
        "critic_model": model_inputs(config.models.critic),
        "critic_files": critic_files,
        "judge": model_inputs(config.models.judge),
        "safety": config.serve.safety.model_dump(mode="json"),
        "seed": config.seed,
        "max_resamples": config.simulate.max_resamples,
        "cases": fingerprint([(c.id, c.profile.model_dump()) for c in cases]),
        "contexts": fingerprint([(c.id, c.gold_reply) for c in contexts]),
    }


def _fingerprint(inputs: dict, system) -> str:
    return fingerprint({"inputs": inputs, "system": system.name, "identity": getattr(system, "identity", {})})


def _add_earlier(folder: Path, evaluated: dict, inputs_key: str, skip: set[str]) -> None:
    """Systems evaluated by an earlier call on the same cases, contexts and agents join the
    comparison, so that evaluating one more system does not re-run the others (a system whose
    model is now missing does not)."""
    for path in sorted(folder.glob("*/metrics.json")):
        metrics = _read_metrics(path.parent)
        name = metrics.get("system")
        if metrics.get("inputs_key") == inputs_key and name not in evaluated and name not in skip:
            evaluated[name] = metrics


def _read_metrics(folder: Path) -> dict:
    """A system's saved metrics; an unreadable file counts as none (the system is evaluated again)."""
    path = folder / "metrics.json"
    try:
        return read_json(path) if path.exists() else {}
    except DataError as e:
        log.warning("%s; evaluating the system again", e)
        return {}


def _resumable(path: Path, id_field: str) -> dict[str, dict]:
    """Records already appended to a progress file, by their ``id_field`` (a line torn by a kill is cut
    away first)."""
    repair_partial_line(path)
    return {r[id_field]: r for _, r in read_jsonl(path)} if path.exists() else {}


def _progress_file(folder: Path, kind: str, key: str) -> Path:
    """Where finished batches of one system's ``kind`` records go while it is evaluated; progress of an
    evaluation with other inputs is dropped."""
    for stale in folder.glob(f"{kind}.*.partial.jsonl"):
        if key not in stale.name:
            stale.unlink()
    return folder / f"{kind}.{key}.partial.jsonl"


def run_protocol(config: Config, agents: Agents, jobs: list[tuple], progress: bool = True) -> dict[str, list[dict]]:
    """:func:`~rlff_esc.evaluate.interactive.run_dialogues` for ``jobs`` with the run's agents and its
    protocol settings (turns, success threshold, seed)."""
    ev = config.evaluate
    return run_dialogues(jobs, agents.seeker, agents.critic, max_turns=ev.max_turns,
                         threshold=ev.critic.success_threshold, seed=config.seed, safety=agents.safety,
                         progress=progress)


def _interactive(config: Config, group: list, keys: dict[str, str], cases, agents: Agents,
                 progress: bool) -> dict[str, list[dict]]:
    """Every case of every system of ``group`` through the interactive protocol, the systems side by
    side, ``evaluate.batch_cases`` cases at a time. Each finished batch is appended (fsync'd) to each
    system's progress file and records already there are reused, so a killed evaluation loses at most
    one batch and continues with the same seeds."""
    ev = config.evaluate
    paths = {s.name: _progress_file(config.paths.eval_system(s.name), "transcripts", keys[s.name]) for s in group}
    done = {name: _resumable(path, "case_id") for name, path in paths.items()}
    for name, records in done.items():
        if records:
            log.info("%s: %d of %d cases already done; continuing", name, len(records), len(cases))
    for start in range(0, len(cases), ev.batch_cases):
        batch = cases[start:start + ev.batch_cases]
        jobs = [(s, [c for c in batch if c.id not in done[s.name]]) for s in group]
        jobs = [(s, todo) for s, todo in jobs if todo]
        if not jobs:
            continue
        results = run_protocol(config, agents, jobs, progress)
        for name, records in results.items():
            append_jsonl(paths[name], records)
            done[name].update((r["case_id"], r) for r in records)
    return {name: [done[name][c.id] for c in cases] for name in done}


def _quality_records(config: Config, system, key: str, contexts, agents: Agents, progress: bool) -> list[dict]:
    """Replies to the test contexts, ``evaluate.quality_batch`` at a time, resumable like
    :func:`_interactive`."""
    ev = config.evaluate
    path = _progress_file(config.paths.eval_system(system.name), "replies", key)
    done = _resumable(path, "context_id")
    todo = [c for c in contexts if c.id not in done]
    rated = {c.id for c in contexts[: ev.judge_max_contexts or len(contexts)]} if ev.judge else set()
    for start in tqdm(range(0, len(todo), ev.quality_batch), desc=f"quality {system.name}", unit="batch",
                      disable=not progress):
        records = _replies(config, system, todo[start:start + ev.quality_batch], agents, rated, progress)
        append_jsonl(path, records)
        done.update((r["context_id"], r) for r in records)
    return [done[c.id] for c in contexts]


def _evaluate_group(config: Config, group: list, cases, cases_source, contexts, agents: Agents, inputs: dict,
                    progress: bool) -> dict[str, dict]:
    """Evaluate the systems of ``group`` together (interactive protocol side by side, then each one's
    response quality) and write each one's transcripts, replies and metrics."""
    keys = {s.name: _fingerprint(inputs, s) for s in group}
    start, cpu_start = time.perf_counter(), time.process_time()
    seeker_before = dict(agents.seeker.stats)
    transcripts = _interactive(config, group, keys, cases, agents, progress)
    together = {"systems": [s.name for s in group], "seconds": round(time.perf_counter() - start, 1),
                "cpu_seconds": round(time.process_time() - cpu_start, 1),  # all threads: the work, not the wait
                "case_turns": sum(len(t["critic"]) for records in transcripts.values() for t in records),
                "seeker_stats": {k: v - seeker_before.get(k, 0) for k, v in agents.seeker.stats.items()}}
    together["case_turns_per_second"] = round(together["case_turns"] / max(together["seconds"], 1e-9), 2)
    log.info("interactive protocol: %d case-turns of %d systems in %.0f s (%.2f per second)",
             together["case_turns"], len(group), together["seconds"], together["case_turns_per_second"])
    metrics = {}
    for system in group:
        metrics[system.name] = _finish_system(config, system, keys[system.name], fingerprint(inputs),
                                              transcripts[system.name], cases, cases_source, contexts, agents,
                                              together, progress)
        if hasattr(system, "close"):
            system.close()
    return metrics


def _finish_system(config: Config, system, key: str, inputs_key: str, transcripts: list[dict], cases, cases_source,
                   contexts, agents: Agents, together: dict, progress: bool) -> dict:
    """One system's response quality, then its files and metrics (``together``: the interactive run it
    shared with other systems: their names, seconds and case-turns)."""
    ev, folder = config.evaluate, config.paths.eval_system(system.name)
    start = time.perf_counter()
    backend = system.backend if isinstance(system, PromptedSystem) else None
    tokens_before = dict(backend.stats) if backend is not None else None
    records = _quality_records(config, system, key, contexts, agents, progress)
    write_jsonl(folder / "transcripts.jsonl", transcripts)
    write_jsonl(folder / "replies.jsonl", records)
    metrics = {
        "system": system.name, "identity": getattr(system, "identity", {}), "fingerprint": key,
        "inputs_key": inputs_key,
        "cases": len(cases), "cases_source": cases_source, "contexts": len(records),
        "empty_replies": sum(1 for t in transcripts for turn in t["turns"]
                             if turn["speaker"] == "supporter" and not turn["text"].strip()),
        "safety_flags": sum(len(t["safety_flags"]) for t in transcripts),
        "well_formed": _well_formed_share(transcripts, records),
        "agents": {"seeker": agents.seeker.name, "critic": agents.critic.name,
                   "critic_kind": ev.critic.kind, "critic_threshold": ev.critic.success_threshold,
                   "judge": agents.judge.name if ev.judge and records else None},
        "quality_tokens": _tokens_used(backend, tokens_before),
        "seconds": {"interactive_together": together["seconds"], "quality": round(time.perf_counter() - start, 1)},
        "evaluated_together": together,
        **system_summary(config, transcripts, records),
    }
    write_json(folder / "metrics.json", metrics)
    for progress_file in folder.glob("*.partial.jsonl"):
        progress_file.unlink()
    log.info("%s: SR %.3f, AvgT %.2f", system.name, metrics["interactive"]["SR"]["value"],
             metrics["interactive"]["AvgT"]["value"])
    return metrics


def _replies(config: Config, system, contexts, agents: Agents, rated: set[str], progress: bool) -> list[dict]:
    """Replies to a batch of test contexts with their similarity to the gold reply, and judge ratings
    for those among the first ``evaluate.judge_max_contexts``."""
    ev = config.evaluate
    records = generate_replies(system, contexts, seed=config.seed)
    add_similarity(records, agents.encoder)
    judged = [(c, r) for c, r in zip(contexts, records) if c.id in rated]
    if judged:
        ratings = judging.rate(agents.judge, [c for c, _ in judged], [r["reply"] for _, r in judged],
                               max_new_tokens=ev.judge_max_new_tokens, label=system.name, progress=progress)
        for (_, record), rating in zip(judged, ratings):
            record["judge"] = rating
    return records


def _well_formed_share(transcripts: list[dict], records: list[dict]) -> float | None:
    """Share of a reasoning system's outputs that follow the <think>…</think> format (None otherwise)."""
    flags = [n["well_formed"] for t in transcripts for n in t["system_notes"] if "well_formed" in n]
    flags += [r["notes"]["well_formed"] for r in records if "well_formed" in r.get("notes", {})]
    return round(sum(flags) / len(flags), 3) if flags else None


def _tokens_used(backend, before: dict | None) -> dict | None:
    """Prompt and generated tokens of the system's own model while its replies to the test contexts
    were generated (None for systems without a model): the machine-independent measure of its cost."""
    if backend is None:
        return None
    return {key: backend.stats[key] - before.get(key, 0) for key in ("prompt_tokens", "completion_tokens")}


def system_summary(config: Config, transcripts: list[dict], records: list[dict]) -> dict:
    """Every metric of one system with its bootstrap interval."""
    ev, boot = config.evaluate, {"samples": config.evaluate.bootstrap_samples, "seed": config.seed}
    interactive = {k: interval(s, len(transcripts), **boot) for k, s in outcome_statistics(transcripts, ev.max_turns).items()}
    summary = {"interactive": interactive, "quality": {}, "judge": {}}
    if records:
        summary["quality"] = {k: interval(s, len(records), **boot) for k, s in quality_statistics(records).items()}
        rated = [r for r in records if r.get("judge")]
        if rated:
            summary["judge"] = {k: interval(s, len(records), **boot) for k, s in judging.judge_statistics(records).items()}
            summary["judge_rated"] = len(rated)
            summary["judge_unparsed"] = judging.unparsed_counts(records)
    return summary
