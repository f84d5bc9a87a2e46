from pathlib import Path

import pytest

from rlff_esc.config import load_config
from rlff_esc.errors import ConfigError, RlffError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_errors_name_the_full_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("simulate:\n  horizon: three\n  horizn: 2\nmodels:\n  seeker:\n    backend: grpc\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    message = str(e.value)
    assert "simulate.horizon: expected int" in message
    assert "simulate.horizn: unknown setting" in message
    assert "models.seeker.backend" in message


def test_overrides_and_relative_paths(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: runs/x\nsimulate:\n  horizon: 3\n")
    config = load_config(path, ["simulate.horizon=0", "reward_model.objective=pointwise"])
    assert config.simulate.horizon == 0 and config.reward_model.objective == "pointwise"
    assert config.run_path == tmp_path / "runs" / "x"
    with pytest.raises(ConfigError, match="simulate.horizon"):
        load_config(path, ["simulate.horizon=-1"])


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_extends_merges_sections_and_refuses_cycles(tmp_path):
    (tmp_path / "base.yaml").write_text("run_dir: runs/base\nsimulate:\n  horizon: 3\n  candidates: 2\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nsimulate:\n  horizon: 0\n")
    config = load_config(tmp_path / "child.yaml")
    assert (config.simulate.horizon, config.simulate.candidates, config.run_dir) == (0, 2, "runs/base")
    (tmp_path / "base.yaml").write_text("extends: child.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "child.yaml")


@pytest.mark.parametrize("yaml_text, overrides, expected", [
    ("policy:\n  grpo: {per_device_batch_size: 6, group_size: 4}\n", [],
     "policy.grpo: the global batch (per_device_batch_size 6 × gradient_accumulation_steps 1 × num_processes 1 = 6) "
     "must be divisible by policy.grpo.group_size (4)"),
    ("models:\n  critic: {backend: http}\n", [],
     "models.critic.base_urls: the http backend needs at least one base URL"),
    ("", ["models.judge.backend=http", "models.judge.base_urls=[localhost:8000]"],
     "models.judge.base_urls: not an http(s) URL: 'localhost:8000'"),
    ("policy:\n  grpo:\n    reward_weights: {reward_model: 1, fluency: 1}\n", [],
     "policy.grpo.reward_weights.fluency: unknown setting"),
    ("policy:\n  grpo:\n    reward_weights: {reward_model: 0, format: 0}\n", [],
     "policy.grpo.reward_weights: every weight is 0"),
    ("policy:\n  grpo: {bf16: true}\n", [], "policy.grpo: bf16: set once for the warm-up and GRPO, as policy.bf16"),
])
def test_rules_between_settings_are_checked_when_the_config_is_read(tmp_path, yaml_text, overrides, expected):
    """Every command reads its config through load_config, so each of them refuses these (not only --dry-run)."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    assert expected in str(e.value)


def test_reward_weights_keep_the_yaml_keys_and_default_the_rest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("policy:\n  grpo:\n    reward_weights: {format: 2.0, repetition: 0.25}\n"
                    "    per_device_batch_size: 6\n    group_size: 3\n")
    weights = load_config(path).policy.grpo.reward_weights
    assert (weights.reward_model, weights.format, weights.repetition) == (1.0, 2.0, 0.25)
    assert load_config(path).policy.grpo.global_batch == 6


def test_dependency_out_of_its_declared_range_is_named_before_any_command(monkeypatch):
    from importlib import metadata

    from rlff_esc import requirements

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "5.17.0" if name == "transformers" else real(name))
    assert requirements.unmet() == [("transformers", "5.17.0", "<6,>=5.23")]
    with pytest.raises(RlffError, match=r"transformers 5\.17\.0 is installed, rlff-esc needs transformers<6,>=5\.23\. "
                                        r"Install the declared versions: pip install 'transformers<6,>=5\.23'"):
        requirements.check()
    monkeypatch.setattr(metadata, "version", real)
    assert requirements.unmet() == []


def test_run_placeholder_follows_the_run_directory(tmp_path):
    config = load_config(CONFIGS / "demo.yaml", [f"run_dir={tmp_path / 'elsewhere'}"])
    assert config.simulate.policy_path == str(tmp_path / "elsewhere" / "policy_sft")
