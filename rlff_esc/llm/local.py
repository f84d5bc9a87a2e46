"""In-process backend over transformers: real batching with left padding, fp32 on CPU.

Decoding is a short loop of our own rather than ``model.generate`` because each request carries its
own temperature, top-p, stop strings, token budget and seed: every row samples from its own seeded
generator, so a request's text does not depend on which other requests shared its batch, and the same
seed gives the same text again.
"""

from __future__ import annotations

import logging
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from rlff_esc.llm.base import Generation, GenerationRequest, Message
from rlff_esc.llm.embedded import resolve_model

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_causal_lm(name: str, dtype: str = "float32", device: str = "auto"):
    """Load a causal LM and its tokenizer (left padding, a pad token set) from a name or folder."""
    path = resolve_model(name)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch_dtype = DTYPES.get(dtype, "auto")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device).eval()
    return model, tokenizer


class LocalBackend:
    """A causal LM in this process. ``batch_size`` rows are decoded together."""

    def __init__(self, model_name: str, *, batch_size: int = 16, dtype: str = "float32",
                 device: str = "auto", model=None, tokenizer=None):
        self.name = model_name
        self.batch_size = batch_size
        if model is None:
            model, tokenizer = load_causal_lm(model_name, dtype, device)
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.stats = {"prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}

    # -- prompts ---------------------------------------------------------------------------------
    def render(self, messages: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    # -- generate --------------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        if not requests:
            return []
        prompts = self._encode([self.render(r.messages) for r in requests])
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))  # similar lengths together
        out: list[Generation | None] = [None] * len(requests)
        start = time.perf_counter()
        for b in range(0, len(order), self.batch_size):
            idx = order[b: b + self.batch_size]
            for i, g in zip(idx, self._generate_batch([prompts[i] for i in idx], [requests[i] for i in idx])):
                out[i] = g
        self.stats["seconds"] += time.perf_counter() - start
        return out

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], requests: list[GenerationRequest]) -> list[Generation]:
        n, width = len(prompts), max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for row, p in enumerate(prompts):
            input_ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        generators = []
        for r in requests:
            g = torch.Generator(device="cpu")
            g.manual_seed(r.seed if r.seed is not None else torch.seed())
            generators.append(g)
        eos = {self.tokenizer.eos_token_id} | set(_as_list(self.model.generation_config.eos_token_id))
        budget = [r.max_new_tokens for r in requests]
        new_tokens: list[list[int]] = [[] for _ in range(n)]
        finish = [None] * n
        cache = DynamicCache()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids = input_ids
        for step in range(max(budget)):
            logits = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :].float().cpu()
            next_ids = []
            for row, r in enumerate(requests):
                if finish[row] is not None:
                    next_ids.append(pad)
                    continue
                token = _sample(logits[row], r.temperature, r.top_p, generators[row])
                next_ids.append(token)
                if token in eos:
                    finish[row] = "stop"
                    continue
                new_tokens[row].append(token)
                if r.stop and _hits_stop(self.tokenizer, new_tokens[row], r.stop):
                    finish[row] = "stop"
                elif len(new_tokens[row]) >= budget[row]:
                    finish[row] = "length"
            if all(f is not None for f in finish):
                break
            step_ids = torch.tensor(next_ids, device=self.device).unsqueeze(1)
            mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=self.device)], dim=1)
            positions = positions[:, -1:] + 1
        results = []
        for row, r in enumerate(requests):
            text = self.tokenizer.decode(new_tokens[row], skip_special_tokens=True)
            text = _cut_at_stop(text, r.stop)
            self.stats["prompt_tokens"] += len(prompts[row])
            self.stats["completion_tokens"] += len(new_tokens[row])
            results.append(Generation(text=text.strip(), prompt_tokens=len(prompts[row]),
                                      completion_tokens=len(new_tokens[row]),
                                      finish_reason=finish[row] or "length"))
        return results

    # -- loglikelihood -----------------------------------------------------------------------------
    @torch.no_grad()
    def loglikelihood(self, requests: list[tuple[list[Message], str]]) -> list[float]:
        scores = []
        for b in range(0, len(requests), self.batch_size):
            chunk = requests[b: b + self.batch_size]
            contexts = self._encode([self.render(m) for m, _ in chunk])
            conts = self._encode([c for _, c in chunk])
            seqs = [c + k for c, k in zip(contexts, conts)]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, s in enumerate(seqs):  # right padding: positions need no shifting
                ids[row, : len(s)] = torch.tensor(s)
                mask[row, : len(s)] = 1
            logprobs = torch.log_softmax(
                self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float(), -1).cpu()
            for row, (c, k) in enumerate(zip(contexts, conts)):
                targets = torch.tensor(k)
                positions = torch.arange(len(c) - 1, len(c) - 1 + len(k))
                scores.append(float(logprobs[row, positions, targets].sum()))
        return scores


def _as_list(x) -> list:
    return [] if x is None else (list(x) if isinstance(x, (list, tuple)) else [x])


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, sorted_ids = probs.sort(descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(sorted_ids[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


def _hits_stop(tokenizer, tokens: list[int], stops: list[str]) -> bool:
    tail = tokenizer.decode(tokens[-16:], skip_special_tokens=True)
    return any(s in tail for s in stops)


def _cut_at_stop(text: str, stops: list[str]) -> str:
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]
