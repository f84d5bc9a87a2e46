"""Shared fixtures. Tests use tiny models built here for speed and the embedded models where the
behaviour depends on a real one; nothing touches the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ESCONV_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "esconv"


@pytest.fixture(scope="session")
def esconv_dir() -> Path:
    if not (ESCONV_DIR / "train.txt").exists():
        pytest.skip(f"ESConv files not found at {ESCONV_DIR} (CI and the developers' machines have them)")
    return ESCONV_DIR


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The embedded SmolLM2 as a converted folder (converted once into the user cache)."""
    from rlff_esc.llm.embedded import prepare_smollm2

    return prepare_smollm2()


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, smollm2_dir) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer and chat template: fast, and answers garbage."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def smollm2_backend(smollm2_dir):
    """SmolLM2 in float32, the number type in which a request's result does not depend on the other
    requests of its batch (bfloat16 rounds differently per batch shape): the tests check that property."""
    from rlff_esc.llm.local import LocalBackend

    return LocalBackend(str(smollm2_dir), batch_size=16, dtype="float32")


@pytest.fixture(scope="session")
def tiny_backend(tiny_lm_dir):
    from rlff_esc.llm.local import LocalBackend

    return LocalBackend(str(tiny_lm_dir), batch_size=8)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from rlff_esc.llm.embedded import minilm_path

    return minilm_path()
