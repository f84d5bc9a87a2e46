"""One experiment's YAML, validated: every stage reads its own section.

Unknown keys and wrong types are reported with their full path (``simulate.horizon: expected int``),
so a typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlff_esc.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSpec(Section):
    """Which backend serves a role and with which model."""

    backend: Literal["local", "http"] = "local"
    model: str = "embedded:smollm2-135m-instruct"
    base_urls: list[str] = Field(default_factory=list, description="http: one or more replicas")
    api_key_env: str | None = Field(None, description="http: environment variable holding the key")
    max_concurrency: int = Field(16, ge=1, description="http: requests in flight per backend")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    batch_size: int = Field(16, ge=1, description="local: sequences generated together")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    device: str = "auto"


class Models(Section):
    """Role → model. The supporter continues conversations during simulation; the judge rates quality."""

    policy: ModelSpec = Field(default_factory=ModelSpec)
    seeker: ModelSpec = Field(default_factory=ModelSpec)
    supporter: ModelSpec = Field(default_factory=ModelSpec)
    critic: ModelSpec = Field(default_factory=ModelSpec)
    judge: ModelSpec = Field(default_factory=ModelSpec)


class DataConfig(Section):
    dataset: Literal["esconv", "extes"] = "esconv"
    path: str = Field("../shared/data/esconv", description="processed folder, raw ESConv.json, "
                      "'hub' (thu-coai/esconv) or ExTES.json; relative to the config file")
    split: Literal["ppdpp", "seed13"] = "ppdpp"
    skip_invalid: bool = False
    max_contexts: dict[str, int | None] = Field(
        default_factory=lambda: {"train": None, "valid": None, "test": None},
        description="per split, a cap on contexts kept (taken evenly over cases); null keeps all")


class CriticConfig(Section):
    kind: Literal["llm", "learned"] = "llm"
    scoring: Literal["sample", "logprob"] = "logprob"
    samples: int = Field(10, ge=1, description="sample mode: critic samples per judgement (PPDPP: 10)")
    temperature: float = Field(1.1, gt=0, description="sample mode temperature (PPDPP: 1.1)")
    success_threshold: float = Field(0.5, description="mean mapped score above which the issue counts as solved")
    learned_path: str | None = Field(None, description="learned critic folder; default <run_dir>/critic")


class SimulateConfig(Section):
    contexts_split: str = "train"
    candidates: int = Field(4, ge=1, description="K candidate replies per context")
    horizon: int = Field(3, ge=0, description="supporter/seeker exchanges after the seeker's reaction")
    gamma: float = Field(0.9, ge=0, le=1)
    reward: Literal["final", "success", "improvement"] = "final"
    max_new_tokens: int = Field(64, ge=1)
    candidate_max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.9, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    batch_contexts: int = Field(8, ge=1, description="contexts advanced together per engine batch")
    max_resamples: int = Field(2, ge=0, description="re-samples of an out-of-role/empty seeker turn")
    critic: CriticConfig = Field(default_factory=CriticConfig)


class RewardModelConfig(Section):
    backbone: str = "embedded:minilm"
    objective: Literal["pairwise", "pointwise", "classification"] = "pairwise"
    margin_threshold: float = Field(0.05, ge=0)
    heldout_fraction: float = Field(0.2, gt=0, lt=1)
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(256, ge=16)
    lora: bool = False


class LoraConfig(Section):
    enabled: bool = True
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


class SFTConfig(Section):
    enabled: bool = True
    max_steps: int = Field(60, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    max_examples: int | None = 512


class GRPOConfig(Section):
    max_steps: int = Field(20, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    group_size: int = Field(4, ge=2, description="completions per prompt (TRL num_generations)")
    per_device_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    beta: float = Field(0.0, ge=0, description="KL coefficient (TRL default 0.0)")
    epsilon: float = Field(0.2, gt=0, description="clip range")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "dapo"
    max_completion_length: int = Field(96, ge=8)
    temperature: float = Field(0.9, gt=0)
    reward_weights: dict[str, float] = Field(
        default_factory=lambda: {"reward_model": 1.0, "format": 0.5, "repetition": 0.0})
    use_vllm: bool = False
    save_steps: int = Field(10, ge=1)
    num_processes: int = Field(1, ge=1, description="data-parallel processes (accelerate); for --dry-run arithmetic")


class PolicyConfig(Section):
    base_model: str = "embedded:smollm2-135m-instruct"
    reasoning: bool = True
    full_finetune: bool = False
    lora: LoraConfig = Field(default_factory=LoraConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    reward_model_path: str | None = Field(None, description="default <run_dir>/reward_model")


class EvaluateConfig(Section):
    split: str = "test"
    cases_file: str | None = None
    max_cases: int | None = None
    max_turns: int = Field(8, ge=1)
    systems: list[str] = Field(default_factory=lambda: ["base", "rlff_esc"])
    judge: bool = True
    bootstrap_samples: int = Field(1000, ge=100)
    max_new_tokens: int = Field(96, ge=8)
    critic: CriticConfig = Field(default_factory=CriticConfig)


class SafetyConfig(Section):
    enabled: bool = True
    country: str = "US"
    threshold: float = Field(0.55, gt=0, lt=1)


class ServeConfig(Section):
    host: str = "127.0.0.1"
    port: int = 8000
    max_tokens: int = Field(256, ge=1)
    max_request_bytes: int = Field(64_000, ge=1024)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)


class Config(Section):
    name: str = "experiment"
    run_dir: str = "runs/experiment"
    seed: int = 13
    data: DataConfig = Field(default_factory=DataConfig)
    models: Models = Field(default_factory=Models)
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    reward_model: RewardModelConfig = Field(default_factory=RewardModelConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    base_dir: Path = Field(Path("."), exclude=True, description="folder of the YAML file; set by load_config")

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, relative to the config file's folder unless absolute."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def run_path(self) -> Path:
        return self.resolve(self.run_dir)


def _explain(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} invalid setting(s):"]
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = "unknown setting (typo?)"
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            msg = f"expected {kind.split('_')[0]}, got {e.get('input')!r}"
        else:
            msg = e["msg"]
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read and validate a YAML config; ``overrides`` are ``section.key=value`` strings (YAML values)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    try:
        config = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(e, str(path))) from None
    config.base_dir = path.resolve().parent
    return config
