"""``rlff-esc rm``: train the future-oriented reward model; score replies with a trained one."""

from __future__ import annotations

from pathlib import Path

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load
from rlff_esc.errors import RlffError
from rlff_esc.jsonl import write_jsonl

app = typer.Typer(help="Future-oriented reward model: train it, score replies with it.", no_args_is_help=True)


@app.command("train")
def train_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
              force: bool = typer.Option(False, "--force", help="retrain even if an up-to-date model exists"),
              cv_folds: int = typer.Option(0, "--cv-folds", help="also measure K-fold cross-validation by "
                                           "dialogue (K more trainings; 0 = off)")):
    """Train on <run>/trajectories.jsonl, save to <run>/reward_model/, print held-out metrics."""
    from rlff_esc.reward_model.metrics import format_table
    from rlff_esc.reward_model.train import cross_validate, train_reward_model

    cfg = load(config, set_)
    result = train_reward_model(cfg, force=force)  # logs the held-out table when it trains
    if result.get("written_by_another_process"):
        return
    if result.get("skipped"):
        typer.echo(format_table(result))
    note = " (up to date: not retrained; --force retrains)" if result.get("skipped") else ""
    typer.echo(f"reward model and metrics.json in {cfg.paths.reward_model}{note}")
    if cv_folds:
        cross_validate(cfg, cv_folds)  # logs its table; written to cv_metrics.json


@app.command("score")
def score_cmd(
    model: Path = typer.Option(None, "--model", help="reward model folder (default: the config's run)"),
    history: str = typer.Option(None, "--history", help="the conversation so far: lines 'Seeker: …' / "
                                "'Supporter: …', or one seeker message"),
    reply: str = typer.Option(None, "--reply", help="the supporter reply to score"),
    input_file: Path = typer.Option(None, "--input", help="JSONL with fields history and reply"),
    output: Path = typer.Option(None, "--output", help="write the input records with a 'score' field here"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
):
    """Score one reply (--history/--reply) or a JSONL file of them (--input); higher is better."""
    from rlff_esc.reward_model.inputs import as_turns
    from rlff_esc.reward_model.scoring import RewardModelScorer, read_requests

    if (input_file is None) == (reply is None):
        raise RlffError("give either --reply (with --history) or --input FILE.jsonl")
    if input_file is not None:
        records, histories, replies = read_requests(input_file)
    else:
        records, histories, replies = [{"history": history or "", "reply": reply}], [as_turns(history or "")], [reply]
    scorer = RewardModelScorer(model or load(config, set_).paths.reward_model, batch_size=batch_size)
    scores = scorer.score(histories, replies)
    if output is not None:
        write_jsonl(output, ({**record, "score": score} for record, score in zip(records, scores)))
        typer.echo(f"{len(scores)} scores written to {output}")
    else:
        for score in scores:
            typer.echo(f"{score:.4f}")
