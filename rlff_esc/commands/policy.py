"""``rlff-esc policy``: the SFT warm-up, GRPO training, and a held-out check of a trained policy."""

from __future__ import annotations

import json

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
        for when, c in json.loads(check.read_text()).items():
            if c:
                typer.echo(f"held-out {when}: format compliance {c['format_compliance']:.2f}, "
                           f"mean RM score {c['mean_reward']:.3f} (n={c['n']})")


@app.command("check")
def check_cmd(model: str = typer.Argument(..., help="model folder or name (e.g. runs/demo/policy)"),
              config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
              n: int = typer.Option(16, "-n", help="held-out (valid) contexts")):
    """Format compliance and mean reward-model score of a model on held-out contexts."""
    from rlff_esc.policy.check import policy_check

    result = policy_check(load(config, set_), model, n)
    typer.echo(f"format compliance {result['format_compliance']:.2f}, mean RM score {result['mean_reward']:.3f} "
               f"(n={result['n']}, {result['seconds']} s)")
    for e in result["examples"][:3]:
        typer.echo(f"  [{e['score']:+.2f}] {e['output'][:160]}")
