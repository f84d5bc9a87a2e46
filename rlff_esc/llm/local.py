"""In-process backend over transformers: real batching with left padding, in the number type of
:mod:`rlff_esc.llm.precision` (bfloat16 where the hardware has it, else float32).

Decoding is a short loop of our own rather than ``model.generate`` because each request carries its
own temperature, top-p, stop strings, token budget and seed: every row samples from its own seeded
generator, so a request's text does not depend on which other requests shared its batch, and the same
seed gives the same text again.

Work that repeats inside a batch is done once. Prompts that begin with the same tokens (the K
candidates of one context, the critic's four options after one conversation) have that beginning
computed once and its key/value cache copied to each row (:mod:`rlff_esc.llm.prefix`); rows of very
different lengths run as separate forward passes, so that few padding tokens are computed; rows that
have finished leave the batch, once they are a quarter of it; ``loglikelihood`` computes vocabulary
logits only where a continuation token is scored. ``stats`` counts both the tokens asked for
(``prompt_tokens`` + ``completion_tokens``) and the tokens actually run through the model
(``computed_tokens``, and apart from them ``padding_tokens``), so that the saving can be measured.
Decoding writes each new position into room the cache keeps for it instead of copying the cache
(:mod:`rlff_esc.llm.cache`). On CPU, models load with the attention of :mod:`rlff_esc.llm.attention`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlff_esc.llm import attention, precision
from rlff_esc.llm.base import Generation, GenerationRequest, Message
from rlff_esc.llm.cache import GrowingCache, GrowingLayer
from rlff_esc.llm.embedded import resolve_model
from rlff_esc.llm.kept import KeptSequence, KeptSequences
from rlff_esc.llm.prefix import Segment, length_groups, plan_prefixes
from rlff_esc.llm.sampling import sample_row, sample_rows

log = logging.getLogger(__name__)

def load_causal_lm(name: str, dtype: str = "auto", device: str = "auto"):
    """Load a causal LM and its tokenizer (left padding, a pad token set) from a name or folder, for
    inference in ``dtype`` (:func:`rlff_esc.llm.precision.inference_dtype`)."""
    path = resolve_model(name)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=precision.inference_dtype(dtype, device),
                                                 attn_implementation=attention.implementation_on(device))
    model = model.to(device).eval()
    return model, tokenizer


def eos_token_ids(model, tokenizer) -> set[int]:
    """The tokens that end a turn: every end-of-sequence id the model's generation config declares
    (chat models often add an end-of-turn token) and the tokenizer's EOS."""
    declared = model.generation_config.eos_token_id
    declared = [] if declared is None else ([declared] if isinstance(declared, int) else list(declared))
    return {i for i in (*declared, tokenizer.eos_token_id) if i is not None}


@dataclass
class Prefilled:
    """Prompts run through the model: the kept logits, the cache and what decoding continues from."""
    logits: torch.Tensor  # (rows, kept positions, vocabulary), float32 on the model's device
    cache: GrowingCache
    mask: torch.Tensor  # (rows, cached positions) attention mask
    next_position: torch.Tensor  # (rows, 1) position id of each row's next token
    sources: list[KeptSequence | None] | None = None  # the kept sequence each row started from


MIN_SHARED_TOKENS = 8  # a shorter shared stretch costs more as a forward pass of its own than it saves
GROUP_COST_TOKENS = 48  # one more forward pass and the cache join cost about this many tokens' compute (CPU)
# Finished rows leave the batch once they are this fraction of it (1/4): removing rows copies every
# layer's cache, so rows finishing one by one would copy it again and again.
LEAVE_FRACTION = 4


def _cache_rows(cache: GrowingCache, rows: torch.Tensor) -> GrowingCache:
    """A new cache holding ``rows`` of ``cache`` (a row may repeat); empty if ``cache`` is."""
    part = GrowingCache(cache.reserve)
    if cache.get_seq_length() > 0:
        for index, layer in enumerate(cache.layers):
            part.update(layer.keys[rows], layer.values[rows], index)
    return part


def _left_padded(tensors: list[torch.Tensor], dim: int, width: int) -> torch.Tensor:
    """Row blocks padded on the left with zeros along ``dim`` to ``width``, then stacked (dim 0)."""
    return torch.cat([torch.nn.functional.pad(t, (0, 0) * (t.dim() - 1 - dim) + (width - t.shape[dim], 0))
                      for t in tensors])


def _joined(parts: list[tuple[GrowingCache, torch.Tensor, torch.Tensor]],
            groups: list[list[int]]) -> tuple[GrowingCache, torch.Tensor, torch.Tensor]:
    """One (cache, mask, logits) from row groups of different widths, row ``groups[p][i]`` being row i
    of ``parts[p]``: each part right-aligned to the widest (its left padding zeros, masked out as batch
    padding is). Each layer of a part is written straight into the joined cache's buffers and then
    released, so that joining needs hardly more memory than the parts hold."""
    width = max(mask.shape[1] for _, mask, _ in parts)
    targets = [torch.tensor(group, device=parts[0][1].device) for group in groups]
    rows = sum(len(group) for group in groups)
    reserve = parts[0][0].reserve
    cache = GrowingCache(reserve)
    for index in range(len(parts[0][0].layers)):
        like = parts[0][0].layers[index].keys
        buffers = [like.new_empty((rows, like.shape[1], width + reserve, like.shape[-1])) for _ in range(2)]
        for (part, _, _), target in zip(parts, targets):
            layer = part.layers[index]
            pad = width - layer.keys.shape[2]
            for buffer, states in zip(buffers, (layer.keys, layer.values)):
                buffer[target, :, :pad] = 0
                buffer[target, :, pad:width] = states
            layer.release()
        cache.layers.append(GrowingLayer(reserve))
        cache.layers[index].adopt(*buffers, width)
    like_mask, like_logits = parts[0][1], parts[0][2]
    mask = like_mask.new_zeros((rows, width))
    logits = like_logits.new_empty((rows, *like_logits.shape[1:]))
    for (_, part_mask, part_logits), target in zip(parts, targets):
        mask[target, width - part_mask.shape[1]:] = part_mask
        logits[target] = part_logits
    return cache, mask, logits


class LocalBackend:
    """A causal LM in this process. ``batch_size`` rows are decoded together; with ``share_prefixes``
    a prompt beginning shared by rows of a batch is computed once. ``sampling`` says where the next
    tokens are drawn (:mod:`rlff_esc.llm.sampling`): ``host``, row by row; ``device``, all rows at
    once where the model runs; ``auto``, on the host for a CPU model and on the device otherwise."""

    def __init__(self, model_name: str, *, batch_size: int = 16, dtype: str = "auto",
                 device: str = "auto", model=None, tokenizer=None, share_prefixes: bool = True,
                 keep_tokens: int = 0, sampling: str = "auto"):
        self.name = model_name
        self.batch_size = batch_size
        self.share_prefixes = share_prefixes
        self.kept = KeptSequences(keep_tokens) if keep_tokens else None
        if model is None:
            model, tokenizer = load_causal_lm(model_name, dtype, device)
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        if sampling not in ("auto", "host", "device"):
            raise ValueError(f"sampling must be auto, host or device, not {sampling!r}")
        self.sampling = ("host" if self.device.type == "cpu" else "device") if sampling == "auto" else sampling
        self.stats = {"prompt_tokens": 0, "completion_tokens": 0, "computed_tokens": 0, "padding_tokens": 0,
                      "reused_tokens": 0, "logit_positions": 0, "seconds": 0.0}

    # -- prompts ---------------------------------------------------------------------------------
    def render(self, messages: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode_prompt(self, messages: list[Message]) -> list[int]:
        """The token ids the model reads for ``messages`` (the rendered prompt)."""
        return self._encode([self.render(messages)])[0]

    def prompt_tokens(self, messages: list[Message]) -> int:
        """How many tokens the rendered prompt has (a server bounds it before generating)."""
        return len(self.encode_prompt(messages))

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def _batches(self, seqs: list[list[int]]) -> list[list[int]]:
        """Row indices in batches of ``batch_size``; sorted by tokens, so rows that share a beginning
        land in the same batch."""
        order = sorted(range(len(seqs)), key=seqs.__getitem__)
        return [order[b: b + self.batch_size] for b in range(0, len(order), self.batch_size)]

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            if s:
                ids[row, width - len(s):] = torch.tensor(s)
                mask[row, width - len(s):] = 1
        self.stats["computed_tokens"] += sum(len(s) for s in seqs)
        self.stats["padding_tokens"] += ids.numel() - sum(len(s) for s in seqs)
        return ids.to(self.device), mask.to(self.device)

    def _forward(self, ids, mask, positions, cache, logits_to_keep: int) -> torch.Tensor:
        self.stats["logit_positions"] += ids.shape[0] * logits_to_keep
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                          use_cache=True, logits_to_keep=logits_to_keep).logits.float()

    @torch.no_grad()
    def _prefill(self, seqs: list[list[int]], limits: list[int], logits_to_keep: int, reserve: int = 0) -> Prefilled:
        """Run ``seqs`` through the model, each shared beginning once (at most ``limits[i]`` tokens of
        row i are shared, see :func:`plan_prefixes`), and keep the logits of each row's last
        ``logits_to_keep`` positions; the cache has room for ``reserve`` more positions."""
        levels = plan_prefixes(seqs, limits, MIN_SHARED_TOKENS) if self.share_prefixes else []
        cache = GrowingCache(reserve)
        mask = torch.zeros((1, 0), dtype=torch.long, device=self.device)
        for level in levels:  # shared stretches, each on top of its parent's cache row
            cache, mask, _ = self._extend(cache, mask, level, [seqs[s.rows[0]][s.start:s.end] for s in level], 1)
        parent = [0] * len(seqs)
        for index, segment in enumerate(levels[-1] if levels else []):
            for row in segment.rows:
                parent[row] = index
        rows = [Segment([row], parent[row], levels[-1][parent[row]].end if levels else 0, len(seq))
                for row, seq in enumerate(seqs)]
        cache, mask, logits = self._extend(cache, mask, rows, [seq[s.start:] for s, seq in zip(rows, seqs)],
                                           logits_to_keep)
        return Prefilled(logits, cache, mask, torch.tensor([[len(seq)] for seq in seqs], device=self.device))

    def _prefill_from_kept(self, seqs: list[list[int]], limits: list[int], reserve: int) -> Prefilled | None:
        """Like :meth:`_prefill` (one logit position kept), each row starting from the kept sequence it
        shares most with (:mod:`rlff_esc.llm.kept`); None when no row shares ``MIN_SHARED_TOKENS``."""
        found = [self.kept.longest_shared(seq, limit) for seq, limit in zip(seqs, limits)]
        if max(length for _, length in found) < MIN_SHARED_TOKENS:
            return None
        found = [(kept, length) if length >= MIN_SHARED_TOKENS else (None, 0) for kept, length in found]
        self.stats["reused_tokens"] += sum(length for _, length in found)
        width = max(length for _, length in found)
        like = next(kept for kept, _ in found if kept is not None)  # gives rows with nothing kept their shape

        def rows(part: str, layer: int) -> torch.Tensor:  # each row's kept positions, left-padded to width
            return _left_padded([getattr(kept or like, part)[layer][None, :, :length] for kept, length in found],
                                2, width).to(self.device)

        cache = GrowingCache(reserve)
        for layer in range(len(like.keys)):
            cache.update(rows("keys", layer), rows("values", layer), layer)
        ones = [torch.ones((1, length), dtype=torch.long) for _, length in found]
        mask = _left_padded(ones, 1, width).to(self.device)
        segments = [Segment([row], row, length, len(seq)) for row, ((_, length), seq) in enumerate(zip(found, seqs))]
        cache, mask, logits = self._extend(cache, mask, segments, [seq[s.start:] for s, seq in zip(segments, seqs)], 1)
        return Prefilled(logits, cache, mask, torch.tensor([[len(seq)] for seq in seqs], device=self.device),
                         [kept for kept, _ in found])

    def _keep(self, cache: GrowingCache, mask: torch.Tensor,
              rows: list[tuple[int, list[int], KeptSequence | None]]) -> None:
        """Keep the cache of each (cache row, tokens, kept sequence it started from): the row's positions
        that hold tokens, in order, in place of the sequence it started from."""
        for k, tokens, source in rows:
            at = mask[k].nonzero().squeeze(1)
            self.kept.add(KeptSequence(tokens[:len(at)], [layer.keys[k][:, at].cpu() for layer in cache.layers],
                                       [layer.values[k][:, at].cpu() for layer in cache.layers]), replaces=source)

    def _extend(self, cache: GrowingCache, mask: torch.Tensor, segments: list[Segment], tokens: list[list[int]],
                logits_to_keep: int) -> tuple[GrowingCache, torch.Tensor, torch.Tensor]:
        """Copy each segment's parent cache row and run its tokens after it, segments of similar length in
        one forward pass (:func:`length_groups`); returns the new cache, mask and logits, rows in the order
        of ``segments``. ``cache`` is used up: extended in place or released once its rows are copied."""
        parents = torch.tensor([max(s.parent, 0) for s in segments], device=self.device)
        groups = length_groups([len(t) for t in tokens], GROUP_COST_TOKENS)
        if len(groups) == 1:  # one pass, on the cache itself: its rows copied once, in segment order
            identity = torch.arange(len(segments), device=self.device)
            in_order = cache.get_seq_length() == 0 or (cache.layers[0].keys.shape[0] == len(segments)
                                                       and torch.equal(parents, identity))
            if not in_order:
                cache.reorder_cache(parents)
            return (cache, *self._run(cache, mask[parents], segments, tokens, logits_to_keep))
        rows = [parents[torch.tensor(group, device=self.device)] for group in groups]
        subsets = [_cache_rows(cache, r) for r in rows]
        cache.release()  # consumed: every group has its copy
        parts = [(part, *self._run(part, mask[r], [segments[i] for i in group], [tokens[i] for i in group],
                                   logits_to_keep)) for part, r, group in zip(subsets, rows, groups)]
        return _joined(parts, groups)

    def _run(self, cache: GrowingCache, mask: torch.Tensor, segments: list[Segment], tokens: list[list[int]],
             logits_to_keep: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Run each segment's tokens on its row of ``cache`` (``mask``: those rows' mask so far); returns
        the extended mask and ``logits_to_keep`` positions of logits per row (padding where a row has fewer)."""
        ids, new = self._left_pad(tokens)
        mask = torch.cat([mask, new], dim=1)
        start = torch.tensor([[s.start] for s in segments], device=self.device)
        positions = start + (new.cumsum(-1) - 1).clamp(min=0)
        logits = self._forward(ids, mask, positions, cache, logits_to_keep)
        if logits.shape[1] < logits_to_keep:  # a pass narrower than the positions asked for
            logits = torch.nn.functional.pad(logits, (0, 0, logits_to_keep - logits.shape[1], 0))
        return mask, logits

    # -- generate --------------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        if not requests:
            return []
        prompts = self._encode([self.render(r.messages) for r in requests])
        out: list[Generation | None] = [None] * len(requests)
        start = time.perf_counter()
        for idx in self._batches(prompts):
            for i, g in zip(idx, self._generate_batch([prompts[i] for i in idx], [requests[i] for i in idx])):
                out[i] = g
        self.stats["seconds"] += time.perf_counter() - start
        return out

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], requests: list[GenerationRequest]) -> list[Generation]:
        n = len(prompts)
        on_device = self.sampling == "device"
        generators = []
        for r in requests:
            g = torch.Generator(device=self.device if on_device else "cpu")
            g.manual_seed(r.seed if r.seed is not None else torch.seed())
            generators.append(g)
        eos = eos_token_ids(self.model, self.tokenizer)
        new_tokens: list[list[int]] = [[] for _ in range(n)]
        ended_by: list[list[int]] = [[] for _ in range(n)]  # the end token, where one stopped the row
        finish: list[str | None] = [None] * n
        limits, reserve = [len(p) - 1 for p in prompts], max(r.max_new_tokens for r in requests)
        state = (self._prefill_from_kept(prompts, limits, reserve) if self.kept is not None else None) or \
            self._prefill(prompts, limits, 1, reserve=reserve)
        cache, mask, position, logits = state.cache, state.mask, state.next_position, state.logits[:, -1, :]
        sources = state.sources or [None] * n
        active = list(range(n))  # request index of each cache row
        while True:
            next_ids, finished_now = [], []
            if not on_device:
                logits = logits.cpu()
            else:
                drawn = sample_rows(logits, [requests[row].temperature for row in active],
                                    [requests[row].top_p for row in active],
                                    [None if finish[row] is not None else generators[row] for row in active])
            for k, row in enumerate(active):
                if finish[row] is not None:  # finished, waiting to leave the batch: its output is not read
                    next_ids.append(0)
                    continue
                r = requests[row]
                token = drawn[k] if on_device else sample_row(logits[k], r.temperature, r.top_p, generators[row])
                next_ids.append(token)
                if token in eos:
                    finish[row], ended_by[row] = "stop", [token]
                else:
                    new_tokens[row].append(token)
                    if r.stop and _hits_stop(self.tokenizer, new_tokens[row], r.stop):
                        finish[row] = "stop"
                    elif len(new_tokens[row]) >= r.max_new_tokens:
                        finish[row] = "length"
                if finish[row] is not None:
                    finished_now.append(k)
            if self.kept is not None and finished_now:
                self._keep(cache, mask, [(k, prompts[active[k]] + new_tokens[active[k]], sources[active[k]])
                                         for k in finished_now])
            keep = [k for k, row in enumerate(active) if finish[row] is None]
            if not keep:
                break
            if len(active) - len(keep) >= max(1, len(active) // LEAVE_FRACTION):  # finished rows leave
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, position = mask[index], position[index]
                active, next_ids = [active[k] for k in keep], [next_ids[k] for k in keep]
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=self.device)], dim=1)
            self.stats["computed_tokens"] += len(active)
            logits = self._forward(torch.tensor(next_ids, device=self.device).unsqueeze(1), mask, position,
                                   cache, 1)[:, -1, :]
            position = position + 1
        results = []
        for row, r in enumerate(requests):
            text = self.tokenizer.decode(new_tokens[row], skip_special_tokens=True)
            text = _cut_at_stop(text, r.stop)
            self.stats["prompt_tokens"] += len(prompts[row])
            self.stats["completion_tokens"] += len(new_tokens[row])
            results.append(Generation(text=text.strip(), prompt_tokens=len(prompts[row]),
                                      completion_tokens=len(new_tokens[row]),
                                      finish_reason=finish[row] or "length",
                                      token_ids=new_tokens[row] + ended_by[row]))
        return results

    # -- loglikelihood -----------------------------------------------------------------------------
    @torch.no_grad()
    def loglikelihood(self, requests: list[tuple[list[Message], str]]) -> list[float]:
        contexts = self._encode([self.render(m) for m, _ in requests])
        conts = self._encode([c for _, c in requests])
        seqs = [c + k for c, k in zip(contexts, conts)]
        scores = [0.0] * len(requests)
        self.stats["prompt_tokens"] += sum(len(s) for s in seqs)
        start = time.perf_counter()
        for idx in self._batches(seqs):
            # the logits at a row's last len(k) + 1 positions, but its last, score its continuation
            keep = max(len(conts[i]) for i in idx) + 1
            state = self._prefill([seqs[i] for i in idx], [len(contexts[i]) - 1 for i in idx], keep)
            logprobs = torch.log_softmax(state.logits, dim=-1).cpu()
            for row, i in enumerate(idx):
                k = conts[i]
                if k:
                    at = torch.arange(keep - len(k) - 1, keep - 1)
                    scores[i] = float(logprobs[row, at, torch.tensor(k)].sum())
        self.stats["seconds"] += time.perf_counter() - start
        return scores


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
