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

RUN_PLACEHOLDER = "{run}"  # stands for the run directory in models.<role>.model


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSpec(Section):
    """Which backend serves a role and with which model."""

    backend: Literal["local", "http"] = "local"
    model: str = Field("embedded:smollm2-135m-instruct", description="embedded name, HF id or folder; "
                       "'{run}' stands for the run directory, e.g. '{run}/seeker' (the grounded seeker)")
    base_urls: list[str] = Field(default_factory=list, description="http: one or more replicas")
    api_key_env: str | None = Field(None, description="http: environment variable holding the key")
    max_concurrency: int = Field(16, ge=1, description="http: requests in flight per backend")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    batch_size: int = Field(16, ge=1, description="local: sequences generated together")
    share_prefixes: bool = Field(True, description="local: compute a prompt beginning shared by several "
                                 "requests of a batch once (K candidates, critic options); off: every prompt whole")
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
    learned_backbone: str = Field("embedded:minilm", description="learned: frozen sentence encoder")
    ridge_alpha: float = Field(3.0, gt=0, description="learned: ridge penalty of the improvement head")
    max_history_turns: int | None = Field(None, ge=1, description="llm: show the critic only the last N turns")


class SimulateConfig(Section):
    contexts_split: str = "train"
    max_contexts: int | None = Field(None, ge=1, description="simulate at most N contexts of the split "
                                     "(spread evenly over it); null: all")
    policy_path: str | None = Field(None, description="policy folder proposing the candidates (e.g. "
                                    "<run_dir>/policy_sft); used when it exists, else models.policy")
    candidates: int = Field(4, ge=1, description="K candidate replies per context")
    futures: int = Field(1, ge=1, description="futures simulated after each candidate (other seeds); the "
                         "reward model learns their mean reward, as one future's is mostly sampling noise")
    horizon: int = Field(3, ge=0, description="supporter/seeker exchanges after the seeker's reaction; "
                         "0 judges right after the reaction (immediate-reward ablation)")
    gamma: float = Field(0.9, ge=0, le=1, description="discount of the improvement reward")
    reward: Literal["final", "success", "improvement"] = Field(
        "improvement", description="which reward trains the reward model (all three are written)")
    max_new_tokens: int = Field(64, ge=1, description="seeker and supporter turns")
    candidate_max_new_tokens: int = Field(128, ge=1, description="policy candidates (reasoning + reply)")
    temperature: float = Field(0.9, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    supporter_reasoning: bool = Field(False, description="the supporter agent writes <think> first "
                                      "(stripped before anyone sees it)")
    max_history_turns: int | None = Field(None, ge=1, description="the seeker sees only the last N turns "
                                          "(the candidates and the supporter, which stands in for the policy, "
                                          "read the policy's prompt: policy.max_history_turns)")
    batch_contexts: int = Field(8, ge=1, description="contexts advanced together per engine batch "
                                "(and flushed to trajectories.jsonl together)")
    max_resamples: int = Field(2, ge=0, description="re-samples of an out-of-role/empty/copied seeker turn")
    critic: CriticConfig = Field(default_factory=CriticConfig)


class RewardModelConfig(Section):
    backbone: str = Field("embedded:minilm", description="embedded:minilm (mean-pooled encoder) or any HF "
                          "causal LM id/path (score head), e.g. embedded:smollm2-135m-instruct")
    objective: Literal["pairwise", "pointwise", "classification"] = Field(
        "pairwise", description="pairwise: TRL RewardTrainer; pointwise: regression on the reward; "
        "classification: on rewards.success")
    margin_threshold: float = Field(0.05, ge=0, description="pairs need a reward gap above this")
    use_margin: bool = Field(True, description="pairwise loss subtracts the reward gap (TRL margin column)")
    heldout_fraction: float = Field(0.2, gt=0, lt=1, description="share of dialogues held out")
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(256, ge=16, description="tokens; the history is cut from the left")
    pooling: Literal["all", "reply"] = Field("all", description="encoder backbones: average the states of "
                                             "every token, or of the reply's only (which read the history "
                                             "through attention); decoders always read the last token")
    train_layers: int | None = Field(None, ge=0, description="full fine-tuning: train only the top k "
                                     "layers (+ head); 0 = head only on frozen features; null = all")
    lora: bool = False
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    score_batch_size: int = Field(32, ge=1, description="replies scored together")
    output_dir: str | None = Field(None, description="default <run_dir>/reward_model")


class LoraConfig(Section):
    enabled: bool = Field(True, description="train LoRA adapters (merged into full weights when saved); "
                          "false, or policy.full_finetune: true, trains every weight")
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    top_layers: int | None = Field(None, ge=1, description="adapt only the top N decoder layers: no backward "
                                   "pass through the others, about twice as fast on CPU; null adapts all")


class SFTConfig(Section):
    """Warm-up on ESConv gold replies with a templated reasoning part (see rlff_esc/policy/dataset.py)."""

    enabled: bool = True
    max_steps: int = Field(60, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_examples: int | None = Field(512, description="train-split contexts used (spread over dialogues)")
    max_length: int = Field(512, ge=32, description="tokens per example (prompt + target)")
    max_target_tokens: int | None = Field(None, ge=8, description="use only examples whose target (reasoning, "
                                          "reply, end of turn) fits this many tokens; null: policy.grpo."
                                          "max_completion_length, the budget GRPO and the check generate with")


class SeekerTrainingConfig(Section):
    """The grounded seeker (``rlff-esc agents train-seeker``): a seeker simulator fine-tuned on ESConv
    train seeker turns, saved to ``<run_dir>/seeker``; select it with ``models.seeker.model: "{run}/seeker"``
    (see rlff_esc/agents/seeker_training.py). Defaults are sized for 2 CPU cores (about 3 minutes)."""

    enabled: bool = Field(False, description="`rlff-esc run` trains it (stage 'seeker', before simulate)")
    base_model: str = Field("embedded:smollm2-135m-instruct", description="any HF causal LM id or folder")
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig(top_layers=12),
                             description="LoRA adapters, merged when saved (enabled: false trains every weight)")
    max_steps: int = Field(24, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_examples: int | None = Field(96, ge=1, description="train-split seeker turns used (spread over "
                                     "dialogues); null: all")
    max_length: int = Field(320, ge=32, description="tokens per example (prompt + real turn); longer ones "
                            "are left out, not cut")
    bf16: bool = Field(False, description="bf16 training (GPU); fp32 on CPU")


class GRPOConfig(Section):
    max_steps: int = Field(20, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    group_size: int = Field(4, ge=2, description="completions per prompt (TRL num_generations)")
    per_device_batch_size: int = Field(8, ge=1, description="completions per device per step")
    gradient_accumulation_steps: int = Field(1, ge=1)
    beta: float = Field(0.0, ge=0, description="KL coefficient (TRL default 0.0)")
    epsilon: float = Field(0.2, gt=0, description="clip range (acts only when num_iterations > 1)")
    num_iterations: int = Field(1, ge=1, description="optimizer steps on each generation batch (GRPO's μ); "
                                "max_steps counts them, so each step costs less generation")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "dapo"
    max_completion_length: int = Field(96, ge=8)
    temperature: float = Field(0.9, gt=0)
    reward_weights: dict[str, float] = Field(
        default_factory=lambda: {"reward_model": 1.0, "format": 0.5, "repetition": 0.0},
        description="weight per reward function: reward_model, format, repetition (0 leaves one out)")
    standardize_reward_model: bool = Field(True, description="standardize reward-model scores over each batch "
                                           "before weighting (its scale is arbitrary; see policy/rewards.py)")
    use_vllm: bool = Field(False, description="generate with vLLM (GPU; TRL's vllm_mode below)")
    vllm_mode: Literal["colocate", "server"] = "colocate"
    bf16: bool = Field(False, description="bf16 mixed precision (GPU); fp32 on CPU")
    activation_checkpointing: bool = Field(False, description="recompute activations in the backward pass "
                                           "(GPU memory); the SFT warm-up uses this setting too")
    save_steps: int = Field(10, ge=1)
    logging_steps: int = Field(1, ge=1)
    num_processes: int = Field(1, ge=1, description="data-parallel processes (accelerate); for --dry-run arithmetic")
    check_contexts: int = Field(16, ge=0, description="held-out (valid) contexts on which format compliance and "
                                "RM score are measured before and after training; 0 skips")


class PolicyConfig(Section):
    base_model: str = "embedded:smollm2-135m-instruct"
    reasoning: bool = True
    full_finetune: bool = False
    max_history_turns: int = Field(6, ge=1, description="the policy's prompt keeps the last N turns of a "
                                   "conversation, starting at a seeker turn, in training, simulation, "
                                   "evaluation and serving alike")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    reward_model_path: str | None = Field(None, description="default <run_dir>/reward_model")


class PolicyPath(Section):
    """A trained policy evaluated by path (an ablation of P4, or any other model folder)."""

    path: str = Field(description="model folder; '{run}' stands for the run directory")
    reasoning: bool | None = Field(None, description="prompt with the reasoning format; default: what the "
                                   "manifest of the policy's run says, else policy.reasoning")


class PlannerConfig(Section):
    """The strategy planner of the `strategy` system (PPDPP's supervised stage, on MiniLM)."""

    encoder: str = "embedded:minilm"
    max_examples: int | None = Field(2000, ge=10, description="training contexts from ESConv train, taken evenly")
    history_turns: int = Field(4, ge=1, description="most recent turns the planner reads")
    max_seq_length: int = Field(128, ge=16)


class EvaluateConfig(Section):
    split: str = Field("test", description="cases of this split of the run's cases.jsonl")
    cases_file: str | None = Field(None, description="JSONL of cases (emotion_type, problem_type, situation)")
    max_cases: int | None = Field(None, ge=1, description="first N cases (all when null)")
    max_turns: int = Field(8, ge=1, description="supporter turns per dialogue (PPDPP: 8)")
    systems: list[str] = Field(default_factory=lambda: ["base", "base_reasoning", "sft", "strategy", "rlff_esc"])
    policies: dict[str, PolicyPath] = Field(default_factory=dict, description="extra systems: name -> model folder")
    max_new_tokens: int = Field(64, ge=8, description="reply budget of systems that answer directly")
    reasoning_max_new_tokens: int = Field(128, ge=8, description="budget of systems that think first")
    seeker_max_new_tokens: int = Field(48, ge=8)
    seeker_temperature: float = Field(0.9, ge=0)
    safety: bool = Field(True, description="screen seeker messages; a flagged one gets the safe reply")
    quality: bool = Field(True, description="reference metrics on the run's test contexts")
    quality_max_contexts: int | None = Field(None, ge=1)
    judge: bool = True
    judge_max_contexts: int | None = Field(None, ge=1, description="judge ratings on the first N contexts")
    judge_max_new_tokens: int = Field(48, ge=8)
    bootstrap_samples: int = Field(1000, ge=100)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    critic: CriticConfig = Field(default_factory=CriticConfig)


class SafetyConfig(Section):
    """Crisis detection on the seeker's messages (see rlff_esc/serve/safety.py)."""

    enabled: bool = Field(True, description="off only for research on raw policy output; chat warns")
    country: str = Field("US", description="crisis resources shown (ISO code, e.g. US, UK, CA, AU, DE); "
                         "unknown codes fall back to a generic message")
    embedder: str | None = Field("embedded:minilm", description="sentence-transformers model for the "
                                 "prototypes; null: lexicon only")
    threshold: float = Field(0.50, gt=0, lt=1, description="cosine similarity to a crisis prototype that flags "
                             "(chosen on the dev split: benchmarks/safety_eval.py --grid)")
    margin: float = Field(0.10, ge=-1, le=1, description="the crisis prototype must beat the nearest "
                          "non-crisis prototype by this much")
    lexicon: bool = Field(True, description="also flag the lexicon's explicit phrases")
    resources_file: str | None = Field(None, description="JSON of crisis resources per country; "
                                       "default: the one shipped with the package")
    log_path: str | None = Field(None, description="JSONL file every flag is appended to (besides logging)")


class ServeConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key_env: str = Field("RLFF_ESC_API_KEY", description="environment variable holding the API key")
    max_tokens: int = Field(512, ge=1, description="upper bound on a request's max_tokens")
    default_max_tokens: int = Field(160, ge=1, description="max_tokens when a request gives none")
    temperature: float = Field(0.7, ge=0, description="default sampling temperature (requests may override)")
    top_p: float = Field(0.95, gt=0, le=1)
    max_request_bytes: int = Field(64_000, ge=1024)
    max_batch: int = Field(16, ge=1, description="requests generated together by the batching queue")
    batch_wait_ms: float = Field(20.0, ge=0, description="how long the queue waits to fill a batch")
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
    seeker_training: SeekerTrainingConfig = Field(default_factory=SeekerTrainingConfig)
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


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A YAML mapping; ``extends: other.yaml`` (relative to this file) starts from that file's settings."""
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    parent_path = (path.parent / parent).resolve()
    if parent_path in seen:
        raise ConfigError(f"{path}: extends: {parent} makes a cycle")
    return _merge(_read_yaml(parent_path, seen + (path.resolve(),)), raw)


def _merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read and validate a YAML config; ``overrides`` are ``section.key=value`` strings (YAML values)."""
    path = Path(path)
    raw = _read_yaml(path)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value is not valid YAML; quote it, e.g. "
                              f"{key}='\"{value}\"'") from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(e, str(path))) from None
    config.base_dir = path.resolve().parent
    for role in Models.model_fields:  # a model trained into the run directory: "{run}/seeker"
        spec = getattr(config.models, role)
        spec.model = spec.model.replace(RUN_PLACEHOLDER, str(config.run_path))
    return config
