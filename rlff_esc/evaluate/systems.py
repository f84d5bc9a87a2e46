"""The systems under evaluation, all behind one interface: a batch of dialogue histories in, one
:class:`Reply` per history out (its text never holds a ``<think>`` block; the raw output goes in its note).

Every system is a chat model plus a way of prompting it:

- ``base``: the base policy model zero-shot, with the supporter prompt and no reasoning;
- ``base_reasoning``: the same model asked to think first (the reasoning format), reply kept;
- ``sft``: the SFT warm-up policy in ``<run>/policy_sft/``;
- ``strategy``: the base model told which support strategy to use next, chosen by a planner trained on
  ESConv's strategy labels (PPDPP's supervised stage; see :mod:`rlff_esc.evaluate.planner`);
- ``rlff_esc``: the GRPO policy in ``<run>/policy/``;
- any other trained policy by path (the ablations), from ``evaluate.policies`` or ``name=path``;
- the reference systems ``dismissive``, ``random_reply`` and ``retrieval``, which need no model
  (see :mod:`rlff_esc.evaluate.references`).

Model folders load on first use and are released by :meth:`ModelSystem.close`, so only one trained
policy sits in memory at a time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rlff_esc.config import Config, ModelSpec
from rlff_esc.data.schema import Turn
from rlff_esc.errors import RlffError
from rlff_esc.evaluate.base import Reply, System
from rlff_esc.evaluate.planner import StrategyPlanner, load_or_train_planner
from rlff_esc.evaluate.references import REFERENCE_SYSTEMS, build_reference
from rlff_esc.llm.base import ChatBackend, Generation, GenerationRequest
from rlff_esc.policy.reasoning import parse, policy_prompt, system_prompt
from rlff_esc.stages import folder_digest

log = logging.getLogger(__name__)

BUILTIN = ("base", "base_reasoning", "sft", "strategy", "rlff_esc")
# Where the trained systems live in the run directory, and which stage writes them.
MODEL_FOLDERS = {
    "sft": ("policy_sft", "the SFT stage (`rlff-esc policy sft`, rlff_esc.policy.sft.run_sft)"),
    "rlff_esc": ("policy", "the GRPO stage (`rlff-esc policy grpo`, rlff_esc.policy.grpo.run_grpo)"),
}


class SystemUnavailable(RlffError):
    """A system that cannot be evaluated (its model folder is missing); the others still run."""


class PromptedSystem:
    """A chat backend prompted with the policy's own prompt, with or without the reasoning step."""

    def __init__(self, name: str, backend: ChatBackend, *, reasoning: bool, max_new_tokens: int,
                 history_turns: int | None = None, identity: dict | None = None):
        self.name, self.backend, self.reasoning, self.max_new_tokens = name, backend, reasoning, max_new_tokens
        self.history_turns = history_turns
        self.identity = {"model": backend.name, "reasoning": reasoning, "history_turns": history_turns,
                         **(identity or {})}

    def prompts(self, histories: list[list[Turn]]) -> list[tuple[list[dict], dict]]:
        """Chat messages per history, with notes to keep beside each reply."""
        return [(policy_prompt(h, self.reasoning, self.history_turns), {}) for h in histories]

    def requests(self, histories: list[list[Turn]], seeds: list[int]) -> tuple[list[GenerationRequest], list[dict]]:
        """What to ask the backend for these histories, and the notes to keep beside each reply."""
        prompts = self.prompts(histories)
        return ([GenerationRequest(messages=m, max_new_tokens=self.max_new_tokens, temperature=0.0, seed=s)
                 for (m, _), s in zip(prompts, seeds)], [extra for _, extra in prompts])

    def replies(self, outputs: list[Generation], notes: list[dict]) -> list[Reply]:
        """The backend's answers to :meth:`requests` as replies: the text after the reasoning block."""
        replies = []
        for out, extra in zip(outputs, notes):
            parsed = parse(out.text)
            note = {**extra, "raw": out.text, "finish_reason": out.finish_reason}
            if self.reasoning:
                note["well_formed"] = parsed.well_formed
            replies.append(Reply(parsed.reply, note))
        return replies

    def respond(self, histories: list[list[Turn]], seeds: list[int]) -> list[Reply]:
        requests, notes = self.requests(histories, seeds)
        return self.replies(self.backend.generate(requests), notes)

    def close(self) -> None:
        pass


class ModelSystem(PromptedSystem):
    """A trained policy in a model folder, loaded on first use."""

    def __init__(self, name: str, path: Path, spec: ModelSpec, *, reasoning: bool, max_new_tokens: int,
                 history_turns: int | None = None):
        self.path, self.spec = Path(path), spec
        self._backend: ChatBackend | None = None
        self.name, self.reasoning, self.max_new_tokens = name, reasoning, max_new_tokens
        self.history_turns = history_turns
        self.identity = {"model": str(self.path), "reasoning": reasoning, "history_turns": history_turns,
                         "weights": folder_digest(self.path)}

    @property
    def backend(self) -> ChatBackend:
        if self._backend is None:
            self._backend = load_model_folder(self.path, self.spec)
        return self._backend

    def close(self) -> None:
        self._backend = None


# ESConv's eight strategies, described in our words after Liu et al. (2021), for the prompt.
STRATEGIES = {
    "Question": "ask an open question that helps them say more about their feelings or their problem",
    "Restatement or Paraphrasing": "restate briefly, in your own words, what they just told you",
    "Reflection of feelings": "name the feelings they are expressing and show you understand them",
    "Self-disclosure": "share briefly a similar experience or feeling of your own",
    "Affirmation and Reassurance": "affirm their strengths or efforts and reassure them",
    "Providing Suggestions": "gently offer one practical suggestion they could try",
    "Information": "give them a useful piece of information, such as a fact or a resource",
    "Others": "answer naturally, as in a greeting, thanks or small talk",
}


def strategy_instruction(strategy: str) -> str:
    what = STRATEGIES.get(strategy, STRATEGIES["Others"])
    return f" In your next reply, use the support strategy \"{strategy}\": {what}."


class StrategySystem(PromptedSystem):
    """The base model, told in its system prompt which strategy the planner chose for this turn."""

    def __init__(self, backend: ChatBackend, planner: StrategyPlanner, *, max_new_tokens: int,
                 history_turns: int | None = None):
        super().__init__("strategy", backend, reasoning=False, max_new_tokens=max_new_tokens,
                         history_turns=history_turns,
                         identity={"planner": planner.encoder_name, "planner_metrics": planner.metrics})
        self.planner = planner

    def prompts(self, histories: list[list[Turn]]) -> list[tuple[list[dict], dict]]:
        prompts = []
        for history, strategy in zip(histories, self.planner.predict(histories)):
            messages = policy_prompt(history, False, self.history_turns)
            messages[0] = {"role": "system", "content": system_prompt(False) + strategy_instruction(strategy)}
            prompts.append((messages, {"strategy": strategy}))
        return prompts


def respond_together(calls: list[tuple[System, list[list[Turn]], list[int]]]) -> list[list[Reply]]:
    """The replies of each (system, histories, seeds) call. Prompted systems over one loaded model
    (``base``, ``base_reasoning`` and ``strategy`` share the base model) answer in one backend call:
    fuller batches for the same work. Each request keeps its own seed and budget, so a reply is what the
    system gives alone (exactly so in float32)."""
    out: list[list[Reply]] = [[] for _ in calls]
    together: dict[int, list[int]] = {}
    for k, (system, histories, seeds) in enumerate(calls):
        if not histories:
            continue
        if isinstance(system, PromptedSystem):
            together.setdefault(id(system.backend), []).append(k)
        else:
            out[k] = system.respond(histories, seeds)
    for members in together.values():
        asked = [calls[k][0].requests(calls[k][1], calls[k][2]) for k in members]
        answers = calls[members[0]][0].backend.generate([r for requests, _ in asked for r in requests])
        start = 0
        for k, (requests, notes) in zip(members, asked):
            out[k] = calls[k][0].replies(answers[start:start + len(requests)], notes)
            start += len(requests)
    return out


def load_model_folder(path: Path, spec: ModelSpec) -> ChatBackend:
    """A LocalBackend over a saved policy (the policy stages save merged full weights)."""
    from rlff_esc.llm.registry import load_local

    return load_local(spec, str(path))


def _has_weights(path: Path) -> bool:
    return path.is_dir() and (any(path.glob("*.safetensors")) or (path / "pytorch_model.bin").exists())


def build_system(config: Config, name: str) -> System:
    """One system by name: a builtin, a reference system, a name in ``evaluate.policies``, or ``name=path``.

    Raises :class:`SystemUnavailable` (naming the path and the stage that writes it) when a trained
    system's folder is missing."""
    from rlff_esc.llm.registry import build_backend

    ev, run = config.evaluate, config.run_path
    window = config.policy.max_history_turns  # every system reads what the trained policies were trained on
    if name in ("base", "base_reasoning"):
        reasoning = name == "base_reasoning"
        return PromptedSystem(name, build_backend(config.models.policy), reasoning=reasoning,
                              max_new_tokens=_budget(ev, reasoning), history_turns=window)
    if name in REFERENCE_SYSTEMS:
        return build_reference(config, name)
    if name == "strategy":
        planner = load_or_train_planner(config)
        return StrategySystem(build_backend(config.models.policy), planner, max_new_tokens=ev.max_new_tokens,
                              history_turns=window)
    if name in MODEL_FOLDERS:
        folder, stage = MODEL_FOLDERS[name]
        path, reasoning, made_by = run / folder, config.policy.reasoning, f"It is written by {stage}."
    elif name in ev.policies or "=" in name:
        if name in ev.policies:
            entry, made_by = ev.policies[name], "It is set in evaluate.policies."
            path = config.resolve(entry.path.replace("{run}", str(run)))
        else:
            name, _, raw = name.partition("=")
            entry, path = None, Path(raw.replace("{run}", str(run)))
            made_by = "Train it first (an ablation: `rlff-esc run --config configs/ablation-<name>.yaml`)."
        reasoning, window = trained_settings(path, config)
        if entry is not None and entry.reasoning is not None:
            reasoning = entry.reasoning
    else:
        known = ", ".join(BUILTIN + REFERENCE_SYSTEMS + tuple(ev.policies))
        raise RlffError(f"evaluate.systems: unknown system {name!r}; known: {known}, or name=path/to/model")
    if not _has_weights(path):
        raise SystemUnavailable(f"system '{name}': no trained model at {path}. {made_by}".strip())
    return ModelSystem(name, path, config.models.policy, reasoning=reasoning, max_new_tokens=_budget(ev, reasoning),
                       history_turns=window)


def trained_settings(path: Path, config: Config) -> tuple[bool, int]:
    """Reasoning format and history window a policy was trained with: from the manifest of the run
    that made it (an ablation run's ``manifest.json`` beside its ``policy/``), else this config's."""
    manifest = Path(path).parent / "manifest.json"
    policy = json.loads(manifest.read_text()).get("config", {}).get("policy", {}) if manifest.exists() else {}
    return (policy.get("reasoning", config.policy.reasoning),
            policy.get("max_history_turns", config.policy.max_history_turns))


def _budget(ev, reasoning: bool) -> int:
    return ev.reasoning_max_new_tokens if reasoning else ev.max_new_tokens


def system_names(config: Config, names: list[str] | None = None) -> list[str]:
    """The systems to evaluate: the given names, else ``evaluate.systems`` plus ``evaluate.policies``."""
    if names:
        return list(dict.fromkeys(names))
    return list(dict.fromkeys(list(config.evaluate.systems) + list(config.evaluate.policies)))


def build_systems(config: Config, names: list[str] | None = None) -> tuple[list[System], dict[str, str]]:
    """The systems that can run, and for each one that cannot, why (a message for the user)."""
    systems, unavailable = [], {}
    for name in system_names(config, names):
        try:
            systems.append(build_system(config, name))
        except SystemUnavailable as e:
            log.warning("%s", e)
            unavailable[name.partition("=")[0]] = str(e)
    return systems, unavailable
