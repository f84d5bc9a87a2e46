"""``rlff-esc agents``: train the learned critic and the grounded seeker; measure how far the critic
and seeker can be trusted."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load

app = typer.Typer(help="Critic and seeker agents: train the learned critic and the grounded seeker, "
                  "validate against ESConv.",
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
    _write_report(out or cfg.run_path / "agents_validity.json", report, format_report(report))


@app.command("train-seeker")
def train_seeker_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
                     force: bool = typer.Option(False, "--force", help="retrain even if up to date")):
    """Fine-tune a seeker simulator on ESConv train seeker turns; saves to <run>/seeker/
    (select it with --set 'models.seeker.model="{run}/seeker"')."""
    from rlff_esc.agents.seeker_training import train_seeker

    path = train_seeker(load(config, set_), force=force)
    typer.echo(f"grounded seeker in {path}: {(path / 'stage.json').read_text()}")


@app.command("compare-seekers")
def compare_seekers_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
                        model: list[str] = typer.Option(
                            [], "--model", help="NAME=MODEL (repeatable; the first is the reference); default "
                            "prompted=seeker_training.base_model grounded={run}/seeker"),
                        n: int = typer.Option(200, "--n", help="held-out points (one per valid/test dialogue)"),
                        out: Path | None = typer.Option(None, "--out", help="JSON report; default <run>/seeker_comparison.json")):
    """Perplexity of real held-out seeker turns, in-character rate (with the check's accuracy), length
    and similarity to the real answer, for the prompted and the grounded seeker."""
    from rlff_esc.agents.seeker_comparison import compare_seekers, format_comparison
    from rlff_esc.config import RUN_PLACEHOLDER
    from rlff_esc.errors import ConfigError

    cfg = load(config, set_)
    pairs = [m.partition("=") for m in model] or [
        ("prompted", "=", cfg.seeker_training.base_model), ("grounded", "=", str(cfg.paths.seeker))]
    bad = [m for m, (_, sep, value) in zip(model, pairs) if not sep or not value]
    if bad:
        raise ConfigError(f"--model: expected NAME=MODEL, got {bad[0]!r}")
    if not model and not (cfg.paths.seeker / "config.json").exists():
        raise ConfigError(f"{cfg.paths.seeker}: no grounded seeker there; train it with `rlff-esc agents "
                          "train-seeker` (same config) or name the models with --model NAME=MODEL")
    spec = cfg.models.seeker.model_copy(update={"backend": "local"})
    models = {name: spec.model_copy(update={"model": value.replace(RUN_PLACEHOLDER, str(cfg.run_path))})
              for name, _, value in pairs}
    report = compare_seekers(cfg, models, n=n)
    _write_report(out or cfg.run_path / "seeker_comparison.json", report, format_comparison(report))


@app.command("ladder")
def ladder_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
               n: int = typer.Option(48, "--n", help="held-out contexts, one per dialogue"),
               kind: list[str] = typer.Option(["gold", "random", "generic", "dismissive"], "--kind",
                                              help="candidate kinds to play forward"),
               reward_model: bool = typer.Option(True, "--reward-model/--no-reward-model",
                                                 help="also score the replies with the trained reward model"),
               reaction: bool = typer.Option(True, "--reaction/--no-reaction",
                                             help="also score the replies by the seeker model's likelihood of "
                                                  "fixed reactions (no sampling)"),
               force: bool = typer.Option(False, "--force", help="simulate again instead of resuming")):
    """Known-quality replies (gold, another dialogue's gold, generic, dismissive) played forward by the
    configured seeker, supporter and critic: does the reward rank them in that order?"""
    from rlff_esc.simulate.ladder import format_ladder, run_ladder

    cfg = load(config, set_)
    report = run_ladder(cfg, n=n, kinds=tuple(kind), reward_model=reward_model, reaction=reaction,
                        force=force)
    typer.echo(format_ladder(report))
    typer.echo(f"\nwritten to {cfg.paths.ladder / 'ladder.json'}")


def _write_report(path: Path, report: dict, table: str) -> None:
    """Save a report as JSON (atomically) and print its table."""
    from rlff_esc.jsonl import write_json

    write_json(path, report)
    typer.echo(table)
    typer.echo(f"\nwritten to {path}")
