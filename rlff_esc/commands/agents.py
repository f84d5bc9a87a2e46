"""``rlff-esc agents``: train the learned critic; measure how far the critic and seeker can be trusted."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load

app = typer.Typer(help="Critic and seeker agents: train the learned critic, validate against ESConv.",
                  no_args_is_help=True)


@app.command("train-critic")
def train_critic_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
                     force: bool = typer.Option(False, "--force", help="retrain even if up to date")):
    """Train the data-grounded critic on ESConv train dialogues; saves to <run>/critic/."""
    from rlff_esc.agents.learned_critic import LearnedCritic, train_learned_critic

    path = train_learned_critic(load(config, set_), force=force)
    critic = LearnedCritic.load(path)
    typer.echo(f"learned critic in {path}: {json.dumps(critic.info)}")
    typer.echo(f"mapping: {critic.mapping}")


@app.command("validate")
def validate_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
                 critic: list[str] = typer.Option(["learned", "llm"], "--critic", help="learned and/or llm"),
                 n: int = typer.Option(120, "--n", help="dialogues for LLM critics (slow on CPU)"),
                 seeker_n: int = typer.Option(48, "--seeker-n", help="real points the seeker answers; 0 skips"),
                 out: Path | None = typer.Option(None, "--out", help="JSON report; default <run>/agents_validity.json")):
    """Critic validity against ESConv's intensity reports, and seeker realism."""
    from rlff_esc.agents.validity import format_report, validate_agents
    from rlff_esc.errors import ConfigError

    cfg = load(config, set_)
    bad = [c for c in critic if c not in ("learned", "llm")]
    if bad:
        raise ConfigError(f"--critic: unknown critic {bad[0]!r} (expected learned or llm)")
    report = validate_agents(cfg, critics=tuple(critic), n_llm=n, n_seeker=seeker_n,
                             trajectories_path=cfg.paths.trajectories())
    out = out or cfg.run_path / "agents_validity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    typer.echo(format_report(report))
    typer.echo(f"\nwritten to {out}")


@app.command("ladder")
def ladder_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
               n: int = typer.Option(48, "--n", help="held-out contexts, one per dialogue"),
               kind: list[str] = typer.Option(["gold", "random", "generic", "dismissive"], "--kind",
                                              help="candidate kinds to play forward"),
               reward_model: bool = typer.Option(True, "--reward-model/--no-reward-model",
                                                 help="also score the replies with the trained reward model"),
               force: bool = typer.Option(False, "--force", help="simulate again instead of resuming")):
    """Known-quality replies (gold, another dialogue's gold, generic, dismissive) played forward by the
    configured seeker, supporter and critic: does the reward rank them in that order?"""
    from rlff_esc.simulate.ladder import format_ladder, run_ladder

    cfg = load(config, set_)
    report = run_ladder(cfg, n=n, kinds=tuple(kind), reward_model=reward_model, force=force)
    typer.echo(format_ladder(report))
    typer.echo(f"\nwritten to {cfg.paths.ladder / 'ladder.json'}")
