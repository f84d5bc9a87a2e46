"""One experiment's YAML, validated when it is read.

The settings are grouped by stage (``data``, ``simulate``, ``reward_model``, ``policy``, ``evaluate``,
``serve``) plus ``models``, the backend that serves each role; stages also read one another's sections
where they must agree (the policy's prompt window is the same in simulation, training, evaluation and
serving). Unknown keys and wrong types are reported with their full path (``simulate.horizon: expected
int``), so a typo never silently falls back to a default; rules that tie settings together (a global
batch divisible by the group size, an HTTP backend with its URLs) are validators here, so every entry
point checks them. Section classes end in ``Section`` so as not to read like TRL's or PEFT's configs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from rlff_esc.errors import ConfigError

RUN_PLACEHOLDER = "{run}"  # stands for the run directory in models.<role>.model and simulate.policy_path


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def known_keys(mapping: dict, known: tuple[str, ...]) -> dict:
    """A mapping-valued setting accepts only its known keys: a typo (``{trian: 48}``) would be ignored."""
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} (typo?); known: {list(known)}")
    return mapping


class ModelSpec(Section):
    """Which backend serves a role and with which model."""

    backend: Literal["local", "http"] = "local"
    model: str = Field("embedded:smollm2-135m-instruct", description="embedded name, HF id or folder; "
                       "'{run}' stands for the run directory, e.g. '{run}/seeker' (the grounded seeker)")
    base_urls: list[str] = Field(default_factory=list, validate_default=True,
                                 description="http: one or more replicas")
    api_key_env: str | None = Field(None, description="http: environment variable holding the key")
    max_concurrency: int = Field(16, ge=1, description="http: requests in flight per backend")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    batch_size: int = Field(64, ge=1, description="local: sequences generated together (on a 2-core CPU the "
                            "evaluation ran 1.36x faster at 64 than at 16, and no faster at 128)")
    share_prefixes: bool = Field(True, description="local: compute a prompt beginning shared by several "
                                 "requests of a batch once (K candidates, critic options); off: every prompt whole")
    keep_tokens: int = Field(0, ge=0, description="local: keep the key/value cache of generated sequences, up to "
                             "this many tokens, for prompts that continue them (a conversation's next turn); "
                             "SmolLM2-135M needs 23 KB a token in bfloat16; 0: off")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "auto", description="local: the number type the model computes in; auto: bfloat16 on a GPU or a CPU with "
        "AMX units, float32 elsewhere (README, \"Precision\")")
    device: str = "auto"

    @field_validator("base_urls")
    @classmethod
    def _http_needs_urls(cls, urls: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("backend") == "http":
            if not urls:
                raise ValueError("the http backend needs at least one base URL")
            bad = [u for u in urls if not u.startswith(("http://", "https://"))]
            if bad:
                raise ValueError(f"not an http(s) URL: {bad[0]!r}")
        return urls


class Models(Section):
    """Role → model. The supporter continues conversations during simulation; the judge rates quality."""

    policy: ModelSpec = Field(default_factory=ModelSpec)
    seeker: ModelSpec = Field(default_factory=ModelSpec)
    supporter: ModelSpec = Field(default_factory=ModelSpec)
    critic: ModelSpec = Field(default_factory=ModelSpec)
    judge: ModelSpec = Field(default_factory=ModelSpec)


class DataSection(Section):
    dataset: Literal["esconv", "extes"] = "esconv"
    path: str = Field("../shared/data/esconv", description="processed folder, raw ESConv.json, "
                      "'hub' (thu-coai/esconv) or ExTES.json; relative to the config file")
    split: Literal["ppdpp", "seed13"] = "ppdpp"
    skip_invalid: bool = False
    max_contexts: dict[str, int | None] = Field(
        default_factory=lambda: {"train": None, "valid": None, "test": None},
        description="per split, a cap on contexts kept (taken evenly over cases); null keeps all")

    _splits = field_validator("max_contexts")(lambda value: known_keys(value, ("train", "valid", "test")))


SeekerPersona = Literal["cooperative", "resistant"]


class CriticSection(Section):
    kind: Literal["llm", "learned"] = "llm"
    scoring: Literal["sample", "logprob"] = "logprob"
    samples: int = Field(10, ge=1, description="sample mode: critic samples per judgement (PPDPP: 10)")
    temperature: float = Field(1.1, gt=0, description="sample mode temperature (PPDPP: 1.1)")
    success_threshold: float = Field(0.5, description="mean mapped score above which the issue counts as solved")
    learned_path: str | None = Field(None, description="learned critic folder; default <run_dir>/critic")
    learned_backbone: str = Field("embedded:minilm", description="learned: frozen sentence encoder")
    ridge_alpha: float = Field(3.0, gt=0, description="learned: ridge penalty of the improvement head")
    max_history_turns: int | None = Field(None, ge=1, description="llm: show the critic only the last N turns")


class SimulateSection(Section):
    contexts_split: str = "train"
    max_contexts: int | None = Field(None, ge=1, description="simulate at most N contexts of the split "
                                     "(spread evenly over it); null: all")
    policy_path: str | None = Field(None, description="policy folder proposing the candidates (e.g. "
                                    "'{run}/policy_sft', this run's warm-up); used when it exists, "
                                    "else models.policy")
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
    seeker_persona: SeekerPersona = Field("cooperative", description="how the seeker agent takes support: "
                                          "cooperative, or resistant (not helped by platitudes or dismissal)")
    critic: CriticSection = Field(default_factory=CriticSection)


class RewardModelSection(Section):
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
    save_steps: int = Field(50, ge=1, description="checkpoint every N training steps; a killed run resumes "
                            "from the last")
    output_dir: str | None = Field(None, description="default <run_dir>/reward_model")


class LoraSection(Section):
    enabled: bool = Field(True, description="train LoRA adapters (merged into full weights when saved); "
                          "false, or policy.full_finetune: true, trains every weight")
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    top_layers: int | None = Field(None, ge=1, description="adapt only the top N decoder layers: no backward "
                                   "pass through the others, about twice as fast on CPU; null adapts all")


class SFTSection(Section):
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
    save_steps: int = Field(10, ge=1, description="checkpoint every N steps; a killed warm-up resumes from the last")


TRAINING_SHARED = ("bf16", "activation_checkpointing")  # policy settings the warm-up and GRPO both read


class RewardWeights(Section):
    """Weight of each GRPO reward function; 0 leaves one out (see rlff_esc/policy/rewards.py)."""

    reward_model: float = Field(1.0, description="the trained future-oriented reward model")
    format: float = Field(0.5, description="the reasoning format (or a clean reply without reasoning)")
    repetition: float = Field(0.0, description="penalty on repeated n-grams")

    @model_validator(mode="after")
    def _some_signal(self) -> RewardWeights:
        if not any(self.model_dump().values()):
            raise ValueError("every weight is 0; GRPO would have no signal")
        return self


class SeekerTrainingSection(Section):
    """The grounded seeker (``rlff-esc agents train-seeker``): a seeker simulator fine-tuned on ESConv
    train seeker turns, saved to ``<run_dir>/seeker``; select it with ``models.seeker.model: "{run}/seeker"``
    (see rlff_esc/agents/seeker_training.py). Defaults are sized for 2 CPU cores (about 3 minutes)."""

    enabled: bool = Field(False, description="`rlff-esc run` trains it (stage 'seeker', before simulate)")
    base_model: str = Field("embedded:smollm2-135m-instruct", description="any HF causal LM id or folder")
    lora: LoraSection = Field(default_factory=lambda: LoraSection(top_layers=12),
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
    save_steps: int = Field(10, ge=1, description="checkpoint every N steps; a killed training resumes from the last")


class GRPOSection(Section):
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
    reward_weights: RewardWeights = Field(default_factory=RewardWeights)
    standardize_reward_model: bool = Field(True, description="standardize reward-model scores over each batch "
                                           "before weighting (its scale is arbitrary; see policy/rewards.py)")
    use_vllm: bool = Field(False, description="generate with vLLM (GPU; TRL's vllm_mode below)")
    generation: Literal["batched", "transformers"] = Field(
        "batched", description="without vLLM: 'batched' samples with rlff-esc's local backend (a group's "
        "prompt read once, finished completions leave the batch; rlff_esc/policy/rollout.py), "
        "'transformers' with TRL's model.generate")
    vllm_mode: Literal["colocate", "server"] = "colocate"
    save_steps: int = Field(10, ge=1)
    logging_steps: int = Field(1, ge=1)
    num_processes: int = Field(1, ge=1, description="data-parallel processes (accelerate); for --dry-run arithmetic")
    check_contexts: int = Field(16, ge=0, description="held-out (valid) contexts on which format compliance and "
                                "RM score are measured before and after training; 0 skips")

    @model_validator(mode="before")
    @classmethod
    def _shared_settings_moved(cls, data):
        moved = sorted(set(data) & set(TRAINING_SHARED)) if isinstance(data, dict) else []
        if moved:
            raise ValueError(f"{', '.join(moved)}: set once for the warm-up and GRPO, as policy.{moved[0]}")
        return data

    @model_validator(mode="after")
    def _groups_fill_the_batch(self) -> GRPOSection:
        """TRL needs every global batch to hold whole groups of completions of one prompt."""
        global_batch = self.global_batch
        if global_batch % self.group_size:
            raise ValueError(
                f"the global batch (per_device_batch_size {self.per_device_batch_size} × gradient_accumulation_steps "
                f"{self.gradient_accumulation_steps} × num_processes {self.num_processes} = {global_batch}) must be "
                f"divisible by policy.grpo.group_size ({self.group_size})")
        return self

    @property
    def global_batch(self) -> int:
        """Completions per optimizer step over all processes."""
        return self.per_device_batch_size * self.gradient_accumulation_steps * self.num_processes


class PolicySection(Section):
    base_model: str = "embedded:smollm2-135m-instruct"
    reasoning: bool = True
    full_finetune: bool = False
    bf16: bool = Field(False, description="bf16 mixed precision in the warm-up and GRPO (GPU); fp32 on CPU")
    activation_checkpointing: bool = Field(False, description="recompute activations in the backward pass of "
                                           "the warm-up and GRPO (GPU memory)")
    attention: Literal["auto", "sdpa"] = Field(
        "auto", description="attention of the model in training: 'auto' is rlff_esc/llm/attention.py's on CPU (the "
        "same results without copying keys and values to every query head) and transformers' default on GPU; "
        "'sdpa' is transformers' default everywhere")
    lm_head: Literal["auto", "trl"] = Field(
        "auto", description="the training loss's LM head: 'auto' projects only the positions that have a label, "
        "on the CPU too (rlff_esc/policy/lm_head.py; the same loss, SFT steps twice as fast on 2 cores); 'trl' is "
        "TRL's own, which projects every position, prompt and padding included, where Triton is missing")
    max_history_turns: int = Field(6, ge=1, description="the policy's prompt keeps the last N turns of a "
                                   "conversation, starting at a seeker turn, in training, simulation, "
                                   "evaluation and serving alike")
    lora: LoraSection = Field(default_factory=LoraSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    grpo: GRPOSection = Field(default_factory=GRPOSection)
    reward_model_path: str | None = Field(None, description="default <run_dir>/reward_model")


class PolicyPath(Section):
    """A trained policy evaluated by path (an ablation, or any other model folder)."""

    path: str = Field(description="model folder; '{run}' stands for the run directory")
    reasoning: bool | None = Field(None, description="prompt with the reasoning format; default: what the "
                                   "manifest of the policy's run says, else policy.reasoning")


class PlannerSection(Section):
    """The strategy planner of the `strategy` system (PPDPP's supervised stage, on MiniLM)."""

    encoder: str = "embedded:minilm"
    max_examples: int | None = Field(2000, ge=10, description="training contexts from ESConv train, taken evenly")
    history_turns: int = Field(4, ge=1, description="most recent turns the planner reads")
    max_seq_length: int = Field(128, ge=16)


class EvaluateSection(Section):
    split: str = Field("test", description="cases of this split of the run's cases.jsonl")
    cases_file: str | None = Field(None, description="JSONL of cases (emotion_type, problem_type, situation)")
    max_cases: int | None = Field(None, ge=1, description="first N cases (all when null)")
    max_turns: int = Field(8, ge=1, description="supporter turns per dialogue (PPDPP: 8)")
    batch_cases: int = Field(16, ge=1, description="cases run together through the interactive protocol; each "
                             "finished batch is saved, so a killed evaluation loses at most one")
    quality_batch: int = Field(64, ge=1, description="test contexts answered together for the response-quality "
                               "metrics (one reply each, so little memory); each finished batch is saved")
    systems_together: int | None = Field(
        None, ge=1, description="systems run side by side through the interactive protocol, their models "
        "loaded at once (the seeker and critic then answer all of them in one call); null: all")
    systems: list[str] = Field(default_factory=lambda: ["base", "base_reasoning", "sft", "strategy", "rlff_esc"])
    policies: dict[str, PolicyPath] = Field(default_factory=dict, description="extra systems: name -> model folder")
    compare_to: str = Field("rlff_esc", min_length=1, description="the system every other one is tested against "
                            "(paired bootstrap); base when this one was not evaluated; none when neither was")
    max_new_tokens: int = Field(64, ge=8, description="reply budget of systems that answer directly")
    reasoning_max_new_tokens: int = Field(128, ge=8, description="budget of systems that think first")
    seeker_max_new_tokens: int = Field(48, ge=8)
    seeker_temperature: float = Field(0.9, ge=0)
    seeker_persona: SeekerPersona = Field("cooperative", description="as simulate.seeker_persona")
    safety: bool = Field(True, description="screen seeker messages; a flagged one gets the safe reply")
    quality: bool = Field(True, description="reference metrics on the run's test contexts")
    quality_max_contexts: int | None = Field(None, ge=1)
    judge: bool = True
    judge_max_contexts: int | None = Field(None, ge=1, description="judge ratings on the first N contexts")
    judge_max_new_tokens: int = Field(48, ge=8)
    bootstrap_samples: int = Field(1000, ge=100)
    reference_max_contexts: int | None = Field(
        4000, ge=1, description="training contexts (gold replies) the random_reply and retrieval systems draw "
        "on, spread over the dialogues; null: all (ESConv's PPDPP train split has 11,705)")
    planner: PlannerSection = Field(default_factory=PlannerSection)
    critic: CriticSection = Field(default_factory=CriticSection)


class SafetySection(Section):
    """Crisis screening of the seeker's messages and of the policy's replies (see rlff_esc/safety/)."""

    enabled: bool = Field(True, description="off only for research on raw policy output; chat warns")
    country: str = Field("US", description="crisis resources shown (ISO code, e.g. US, UK, CA, AU, DE); "
                         "unknown codes fall back to a generic message")
    classifier: bool = Field(True, description="the fine-tuned MiniLM classifier (`make setup` trains it); "
                             "false: lexicon only")
    threshold: float | None = Field(None, gt=0, lt=1, description="crisis probability that flags; null: the "
                                    "one chosen on the dev set when the classifier was trained")
    lexicon: bool = Field(True, description="also flag the lexicon's explicit phrases")
    resources_file: str | None = Field(None, description="JSON of crisis resources per country; "
                                       "default: the one shipped with the package")
    log_path: str | None = Field(None, description="JSONL file every flag is appended to (besides logging)")
    log_text: bool = Field(False, description="put the flagged message's words in logs (off: category and "
                           "score only, so crisis disclosures do not end up in log files)")


class ServeSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key_env: str = Field("RLFF_ESC_API_KEY", description="environment variable holding the API key")
    max_tokens: int = Field(512, ge=1, description="upper bound on a request's max_tokens")
    default_max_tokens: int = Field(160, ge=1, description="max_tokens when a request gives none")
    temperature: float = Field(0.7, ge=0, description="default sampling temperature (requests may override)")
    top_p: float = Field(0.95, gt=0, le=1)
    max_request_bytes: int = Field(64_000, ge=1024)
    max_prompt_tokens: int = Field(4096, ge=16, description="upper bound on the rendered prompt's tokens")
    max_pending: int = Field(64, ge=1, description="requests admitted at once (generating or queued); "
                             "more get 503 with Retry-After")
    request_timeout_s: float = Field(120.0, gt=0, description="a request still unanswered after this gets 504")
    max_batch: int = Field(16, ge=1, description="requests generated together by the batching queue")
    batch_wait_ms: float = Field(20.0, ge=0, description="how long the queue waits to fill a batch")
    safety: SafetySection = Field(default_factory=SafetySection)


class Config(Section):
    name: str = "experiment"
    run_dir: str = "runs/experiment"
    seed: int = 13
    data: DataSection = Field(default_factory=DataSection)
    models: Models = Field(default_factory=Models)
    simulate: SimulateSection = Field(default_factory=SimulateSection)
    reward_model: RewardModelSection = Field(default_factory=RewardModelSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    seeker_training: SeekerTrainingSection = Field(default_factory=SeekerTrainingSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    serve: ServeSection = Field(default_factory=ServeSection)
    base_dir: Path = Field(Path("."), exclude=True, description="folder of the YAML file; set by load_config")

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, relative to the config file's folder unless absolute."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def run_path(self) -> Path:
        return self.resolve(self.run_dir)

    @property
    def paths(self):
        """The run directory's map of paths (:class:`rlff_esc.stages.RunPaths`)."""
        from rlff_esc.stages import RunPaths

        return RunPaths(self)


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
            msg = e["msg"].removeprefix("Value error, ")
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


def _check_sections(item: str, parents: list[str]) -> None:
    """``--set a.b.c=v`` needs ``a`` and ``a.b`` to be sections (or mappings); unknown names are left to
    validation, which reports them with their path."""
    model: type[BaseModel] | None = Config
    for depth, name in enumerate(parents):
        field = model.model_fields.get(name) if model is not None else None
        if field is None:
            return
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif get_origin(annotation) is dict:
            model = None
        else:
            raise ConfigError(f"--set {item}: {'.'.join(parents[:depth + 1])} is a single value, not a section "
                              f"(--set {'.'.join(parents[:depth + 1])}=VALUE)")


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
        _check_sections(item, parents)
        for depth, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: {'.'.join(parents[:depth + 1])} is a single value in "
                                  f"{path}, not a section")
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
    if config.simulate.policy_path:
        config.simulate.policy_path = config.simulate.policy_path.replace(RUN_PLACEHOLDER, str(config.run_path))
    return config
