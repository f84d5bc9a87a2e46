"""Build the critic a config asks for: the LLM critic over ``models.critic``, or the learned critic.

Simulation (``simulate.critic``) and evaluation (``evaluate.critic``) each pass their own section.
"""

from __future__ import annotations

from rlff_esc.agents.base import Critic
from rlff_esc.config import Config, CriticSection
from rlff_esc.errors import ConfigError


def build_critic(critic_cfg: CriticSection, config: Config) -> Critic:
    if critic_cfg.kind == "learned":
        from rlff_esc.agents.learned_critic import LearnedCritic

        path = config.paths.learned_critic(critic_cfg)
        if not path.exists():
            raise ConfigError(f"critic.learned_path: learned critic folder {path} not found; train it first "
                              f"(rlff_esc.agents.learned_critic.train_learned_critic) or set critic.kind: llm")
        return LearnedCritic.load(path)
    from rlff_esc.agents.critic import LLMCritic
    from rlff_esc.llm.registry import build_backend

    return LLMCritic(build_backend(config.models.critic), scoring=critic_cfg.scoring,
                     samples=critic_cfg.samples, temperature=critic_cfg.temperature,
                     max_history_turns=critic_cfg.max_history_turns)
