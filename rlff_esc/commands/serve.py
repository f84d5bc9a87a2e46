"""``rlff-esc chat`` and ``rlff-esc serve``: talk to a policy in the terminal, or serve it over HTTP."""

from __future__ import annotations

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load
from rlff_esc.config import Config
from rlff_esc.errors import RlffError

PolicyOption = typer.Option(None, "--policy", "-p", help="policy folder (e.g. runs/demo/policy) or model name "
                            "(e.g. embedded:smollm2-135m-instruct); default: <run_dir>/policy")
ReasoningOption = typer.Option(None, "--reasoning/--no-reasoning",
                               help="prompt for <think> reasoning (default: policy.reasoning)")


def _policy(policy: str | None, cfg: Config) -> str:
    if policy:
        return policy
    default = cfg.paths.policy
    if not (default / "config.json").exists() and not (default / "adapter_config.json").exists():
        raise RlffError(f"no trained policy at {default}: train one (`rlff-esc policy train`) or pass "
                        f"--policy PATH_OR_MODEL (e.g. --policy embedded:smollm2-135m-instruct)")
    return str(default)


def chat_cmd(policy: str | None = PolicyOption, config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
             show_thinking: bool = typer.Option(False, "--show-thinking", help="print the policy's reasoning"),
             reasoning: bool | None = ReasoningOption,
             country: str | None = typer.Option(None, "--country", help="crisis resources (US, UK, CA, AU, ...)")):
    """Chat with a policy in the terminal (/reset, /save FILE, /quit). The safety layer is on."""
    from rlff_esc.serve.chat import chat_loop
    from rlff_esc.serve.responder import build_responder

    cfg = load(config, list(set_ or []) + ([f"serve.safety.country={country}"] if country else []))
    chat_loop(build_responder(_policy(policy, cfg), cfg, reasoning=reasoning), show_thinking=show_thinking)


def serve_cmd(policy: str | None = PolicyOption, config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
              host: str | None = typer.Option(None, "--host", help="default: serve.host (127.0.0.1)"),
              port: int | None = typer.Option(None, "--port", help="default: serve.port (8000)"),
              api_key: str | None = typer.Option(None, "--api-key", help="key clients must send as a Bearer "
                                                 "token; default: the variable named by serve.api_key_env"),
              no_auth: bool = typer.Option(False, "--no-auth", help="no API key (loopback hosts only)"),
              model_name: str | None = typer.Option(None, "--model-name", help="model id reported to clients"),
              reasoning: bool | None = ReasoningOption,
              country: str | None = typer.Option(None, "--country", help="crisis resources (US, UK, CA, AU, ...)")):
    """Serve a policy over an OpenAI-compatible API, with a chat page at /."""
    from rlff_esc.serve.app import resolve_api_key, serve_policy

    cfg = load(config, list(set_ or []) + ([f"serve.safety.country={country}"] if country else []))
    key = resolve_api_key(host or cfg.serve.host, api_key, no_auth, cfg.serve.api_key_env)
    serve_policy(_policy(policy, cfg), cfg, api_key=key, reasoning=reasoning, model_id=model_name,
                 host=host, port=port)
