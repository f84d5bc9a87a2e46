import pytest

from rlff_esc.config import load_config
from rlff_esc.errors import ConfigError


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
