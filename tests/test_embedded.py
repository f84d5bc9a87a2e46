"""The embedded-model cache: converting the GGUF twice at once must leave one good folder."""

import os
import subprocess
import sys

import pytest

from rlff_esc.errors import RlffError
from rlff_esc.llm.embedded import resolve_model


@pytest.mark.slow
def test_two_processes_preparing_at_once_leave_a_loadable_cache(tmp_path):
    env = {**os.environ, "RLFF_ESC_CACHE": str(tmp_path)}
    code = "from rlff_esc.llm.embedded import prepare_smollm2; print(prepare_smollm2())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outs]
    folder = tmp_path / "models" / "smollm2-135m-instruct"
    assert {out.strip() for out, _ in outs} == {str(folder)}
    assert [p.name for p in (tmp_path / "models").iterdir()] == [folder.name]  # no temporary left
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.pad_token_id is not None and sum(p.numel() for p in model.parameters()) > 100e6


def test_embedded_names(minilm_dir):
    assert resolve_model("embedded:minilm") == str(minilm_dir)
    assert (minilm_dir / "config.json").exists()
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct-1M") == "Qwen/Qwen2.5-7B-Instruct-1M"
    with pytest.raises(RlffError, match="unknown embedded model"):
        resolve_model("embedded:gpt-9")
