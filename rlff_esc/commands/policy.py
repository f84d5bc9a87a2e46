"""``rlff-esc policy``: the SFT warm-up, GRPO training, and a held-out check of a trained policy."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load

app = typer.Typer(help="Train the policy: optional SFT warm-up, then GRPO against the reward model.",
                  no_args_is_help=True)
Force = typer.Option(False, "--force", help="redo the work even if it is done with the same inputs")


@app.command("sft")
def sft_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None, force: bool = Force):
    """Warm up the base model on ESConv gold replies with templated reasoning → <run>/policy_sft."""
    from rlff_esc.policy.sft import run_sft

    typer.echo(f"SFT warm-up written to {run_sft(load(config, set_), force=force)}")


@app.command("train")
def train_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None, force: bool = Force):
    """GRPO against the reward model → <run>/policy (resumes from the last checkpoint)."""
    from rlff_esc.policy.grpo import run_grpo

    out = run_grpo(load(config, set_), force=force)
    typer.echo(f"policy written to {out} (curves: {out / 'training_curves.png'})")
    check = out / "check.json"
    if check.exists():
        from rlff_esc.policy.check import describe_comparison

        checks = json.loads(check.read_text())
        for when in ("before", "after"):
            c = checks.get(when)
            if c:
                typer.echo(f"held-out {when}: format compliance {c['format_compliance']:.2f}, "
                           f"mean RM score {c['mean_reward']:.3f} (n={c['n']})")
        if checks.get("comparison"):
            typer.echo(f"held-out mean RM score after − before: {describe_comparison(checks['comparison'])}")


@app.command("check")
def check_cmd(model: str = typer.Argument(..., help="model folder or name (e.g. runs/demo/policy)"),
              config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
              n: int = typer.Option(16, "-n", help="held-out (valid) contexts"),
              against: str = typer.Option(None, "--against", help="a second model (e.g. runs/demo/policy_sft): "
                                          "checked on the same contexts and compared, paired"),
              output: str = typer.Option(None, "--output", "-o", help="write the check(s) as JSON here")):
    """Format compliance and mean reward-model score of a model on held-out contexts."""
    from rlff_esc.policy.check import compare_checks, describe_comparison, policy_check
    from rlff_esc.policy.rewards import load_scorer

    cfg = load(config, set_)
    scorer = load_scorer(cfg)
    result = policy_check(cfg, model, n, scorer=scorer)
    checks = {"model": result}
    if against:
        checks = {"before": policy_check(cfg, against, n, scorer=scorer), "after": result}
    for c in checks.values():
        typer.echo(f"{c['model']}: format compliance {c['format_compliance']:.2f} (cut off {c['cut_off']:.2f}), "
                   f"mean RM score {c['mean_reward']:.3f} (n={c['n']}, {c['seconds']} s)")
    if against:
        checks["comparison"] = compare_checks(checks["after"], checks["before"])
        typer.echo(f"mean RM score {model} − {against}: {describe_comparison(checks['comparison'])}")
    for e in result["examples"][:3]:
        typer.echo(f"  [{e['score']:+.2f}] {e['output'][:160]}")
    if output:
        Path(output).write_text(json.dumps(checks, indent=2))
