"""The whole method, stage after stage: what ``rlff-esc run`` and ``make demo`` execute.

data → learned critic (when a critic is ``learned``) → grounded seeker (when
``seeker_training.enabled``) → SFT warm-up (when enabled) → simulate →
reward model → GRPO → evaluate + report. Each stage skips the work it finds already done with the
same inputs (:mod:`rlff_esc.stages`: content hashes, not paths or times) and continues work a kill
interrupted (training checkpoints, appended trajectories and evaluation batches), so an interrupted
run is simply started again with the same command; a run that finished loads no model and writes no
file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rlff_esc.config import Config

log = logging.getLogger(__name__)


@dataclass
class Stage:
    name: str
    run: Callable[[Config, bool], object]
    wanted: Callable[[Config], bool] = lambda config: True


def _data(config: Config, force: bool):
    from rlff_esc.data.prepare import prepare_stage

    return prepare_stage(config, force=force)


def _critic(config: Config, force: bool):
    from rlff_esc.agents.learned_critic import train_learned_critic

    return train_learned_critic(config, force=force)


def _seeker(config: Config, force: bool):
    from rlff_esc.agents.seeker_training import train_seeker

    return train_seeker(config, force=force)


def _sft(config: Config, force: bool):
    from rlff_esc.policy.sft import run_sft

    return run_sft(config, force=force)


def _simulate(config: Config, force: bool):
    from rlff_esc.simulate.run import simulate

    return simulate(config, force=force)


def _reward_model(config: Config, force: bool):
    from rlff_esc.reward_model.train import train_reward_model

    return train_reward_model(config, force=force)


def _grpo(config: Config, force: bool):
    from rlff_esc.policy.grpo import run_grpo

    return run_grpo(config, force=force)


def _evaluate(config: Config, force: bool):
    from rlff_esc.evaluate.run import evaluate

    return evaluate(config, force=force)


def _uses_learned_critic(config: Config) -> bool:
    return "learned" in (config.simulate.critic.kind, config.evaluate.critic.kind)


STAGES = [
    Stage("data", _data),
    Stage("critic", _critic, _uses_learned_critic),
    Stage("seeker", _seeker, lambda config: config.seeker_training.enabled),
    Stage("sft", _sft, lambda config: config.policy.sft.enabled),
    Stage("simulate", _simulate),
    Stage("reward_model", _reward_model),
    Stage("policy", _grpo),
    Stage("evaluate", _evaluate),
]


def plan(config: Config) -> list[str]:
    """The stages a run would execute, in order, and the checks of the settings; loads no model."""
    from rlff_esc.policy.plan import validate_plan

    stages = [s.name for s in STAGES if s.wanted(config)]
    return [f"run directory: {config.run_path}", f"stages: {' -> '.join(stages)}", *validate_plan(config)]


def run_pipeline(config: Config, *, only: list[str] | None = None, force: bool = False) -> dict[str, float]:
    """Run the wanted stages (or only those named); returns wall seconds per stage."""
    known = {s.name for s in STAGES}
    unknown = sorted(set(only or []) - known)
    if unknown:
        from rlff_esc.errors import ConfigError

        raise ConfigError(f"--stage: unknown stage(s) {unknown}; known: {[s.name for s in STAGES]}")
    stages = [s for s in STAGES if (s.name in only if only else s.wanted(config))]
    seconds = {}
    for i, stage in enumerate(stages, start=1):
        log.info("=== stage %d/%d: %s ===", i, len(stages), stage.name)
        start = time.perf_counter()
        stage.run(config, force)
        seconds[stage.name] = time.perf_counter() - start
        log.info("=== %s done in %.1f s ===", stage.name, seconds[stage.name])
    return seconds
