"""``rlff-esc run --dry-run``: validate a config without loading any model and print the plan.

Rules between settings (a global batch that does not divide by the GRPO group size, an HTTP backend
without ``base_urls``, unknown reward names) are checked when the config is read, by every command.
What a dry run adds are the errors that would make a stage fail after hours of work and that depend on
the files around the config: a data or model path that does not exist. Things that depend on the machine
the run will use (a GPU for vLLM or bf16, an API key's environment variable) become warnings in the
plan instead, since a dry run is often made on another machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rlff_esc.config import Config
from rlff_esc.errors import ConfigError
from rlff_esc.llm.embedded import MINILM, SMOLLM2

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def validate_plan(config: Config) -> list[str]:
    """Check the whole config; return the plan as lines, or raise ``ConfigError`` on the first problem."""
    warnings: list[str] = []
    lines = [f"experiment {config.name!r}: run directory {config.run_path}, seed {config.seed}"]
    lines += _data(config)
    lines += _models(config, warnings)
    lines += _seeker_training(config)
    lines += _simulate(config)
    lines += _reward_model(config)
    lines += _policy(config, warnings)
    ev = config.evaluate
    lines.append(f"evaluate: systems {ev.systems} on the {ev.split} split, up to {ev.max_turns} turns, "
                 f"critic {ev.critic.kind}, judge {'on' if ev.judge else 'off'}")
    return lines + [f"warning: {w}" for w in warnings]


def _data(config: Config) -> list[str]:
    data = config.data
    if data.path != "hub":
        path = config.resolve(data.path)
        if not path.exists():
            raise ConfigError(f"data.path: {path} does not exist")
    caps = ", ".join(f"{k} {'all' if v is None else v}" for k, v in data.max_contexts.items())
    return [f"data: {data.dataset} from {data.path} ({data.split} split); contexts per split: {caps}"]


def _check_model_name(setting: str, name: str, config: Config) -> str:
    """An embedded name, an existing folder, or a hub id (not checked offline)."""
    if name.startswith("embedded:"):
        if name not in (SMOLLM2, MINILM):
            raise ConfigError(f"{setting}: unknown embedded model {name!r}; available: {SMOLLM2}, {MINILM}")
        return "embedded"
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and not HUB_ID.match(name)
    if looks_like_path or Path(name).exists():
        path = config.resolve(name)
        if not path.exists():
            raise ConfigError(f"{setting}: model folder {path} does not exist")
        return "local folder"
    if not HUB_ID.match(name):
        raise ConfigError(f"{setting}: {name!r} is neither an embedded name, an existing folder nor a hub id")
    return "hub id, not checked offline"


def _models(config: Config, warnings: list[str]) -> list[str]:
    lines = []
    for role in ("policy", "seeker", "supporter", "critic", "judge"):
        spec = getattr(config.models, role)
        if spec.backend == "http":
            if not spec.base_urls:
                raise ConfigError(f"models.{role}.base_urls: the http backend needs at least one base URL")
            bad = [u for u in spec.base_urls if not u.startswith(("http://", "https://"))]
            if bad:
                raise ConfigError(f"models.{role}.base_urls: not an http(s) URL: {bad[0]!r}")
            if spec.api_key_env and not os.environ.get(spec.api_key_env):
                warnings.append(f"models.{role}.api_key_env: ${spec.api_key_env} is not set here")
            where = f"http {spec.model} at {len(spec.base_urls)} replica(s), {spec.max_concurrency} in flight each"
        else:
            kind = ("trained by the seeker stage" if role == "seeker" and _trains_seeker(config, spec.model)
                    else _check_model_name(f"models.{role}.model", spec.model, config))
            where = f"local {spec.model} ({kind}), {spec.dtype}, batch {spec.batch_size}"
        lines.append(f"models.{role}: {where}")
    return lines


def _trains_seeker(config: Config, model: str) -> bool:

    return config.seeker_training.enabled and Path(model) == config.paths.seeker


def _seeker_training(config: Config) -> list[str]:

    st = config.seeker_training
    if not st.enabled:
        return []
    _check_model_name("seeker_training.base_model", st.base_model, config)
    return [f"seeker training: {st.base_model} on ESConv train seeker turns, {st.max_steps} steps × batch "
            f"{st.batch_size}, {'LoRA' if st.lora.enabled else 'full fine-tuning'}, into {config.paths.seeker}"]


def _simulate(config: Config) -> list[str]:
    s = config.simulate
    return [f"simulate: {s.candidates} candidates per {s.contexts_split} context, {s.futures} future(s) each, "
            f"horizon {s.horizon} "
            f"({'immediate reward' if s.horizon == 0 else 'future-oriented'}), reward '{s.reward}', "
            f"gamma {s.gamma}, critic {s.critic.kind}"]


def _reward_model(config: Config) -> list[str]:
    rm = config.reward_model
    _check_model_name("reward_model.backbone", rm.backbone, config)
    return [f"reward model: {rm.objective} on {rm.backbone}, {rm.epochs} epochs, batch {rm.batch_size}"]


def _policy(config: Config, warnings: list[str]) -> list[str]:
    p, sft, g = config.policy, config.policy.sft, config.policy.grpo
    _check_model_name("policy.base_model", p.base_model, config)
    if p.reward_model_path:
        path = config.resolve(p.reward_model_path)
        if not path.exists():
            raise ConfigError(f"policy.reward_model_path: {path} does not exist")
    global_batch = g.global_batch
    if g.save_steps > g.max_steps:
        warnings.append(f"policy.grpo.save_steps ({g.save_steps}) > max_steps ({g.max_steps}): no checkpoint "
                        "before the end, so an interruption restarts from scratch")
    if (g.use_vllm or p.bf16) and not _has_cuda():
        warnings.append("policy.grpo.use_vllm / policy.bf16 need a GPU; none is visible on this machine")
    if p.full_finetune and p.lora.enabled:
        warnings.append("policy.full_finetune is true: policy.lora is ignored")
    training = "full fine-tuning" if p.full_finetune or not p.lora.enabled else (
        f"LoRA r={p.lora.r} alpha={p.lora.alpha} on {p.lora.target_modules}")
    lines = [f"policy: {p.base_model}, reasoning {'on (<think>…</think> reply)' if p.reasoning else 'off'}, "
             f"{training}, prompts keep the last {p.max_history_turns} turns"]
    if sft.enabled:
        lines.append(f"policy sft: {sft.max_steps} steps × batch {sft.batch_size}×{sft.gradient_accumulation_steps}"
                     f" on up to {sft.max_examples or 'all'} train contexts, lr {sft.learning_rate}")
    else:
        lines.append("policy sft: off (GRPO starts from the base model)")
    weights = ", ".join(f"{k} {v}" for k, v in g.reward_weights.model_dump().items() if v)
    lines.append(
        f"policy grpo: {g.max_steps} steps, global batch {global_batch} completions = {global_batch // g.group_size} "
        f"prompts × group {g.group_size} ({g.num_processes} process(es)), {g.num_iterations} step(s) per generation "
        f"batch, beta {g.beta}, epsilon {g.epsilon}, "
        f"loss {g.loss_type}, lr {g.learning_rate}, ≤{g.max_completion_length} new tokens, "
        f"generation by {_generator(g)}, "
        f"{'bf16' if p.bf16 else 'fp32'}, rewards: {weights}, checkpoint every {g.save_steps} steps")
    return lines


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _generator(g) -> str:
    """What samples GRPO's completions: vLLM when on, else ``policy.grpo.generation``."""
    if g.use_vllm:
        return f"vLLM ({g.vllm_mode})"
    return "the batched backend" if g.generation == "batched" else "transformers"
