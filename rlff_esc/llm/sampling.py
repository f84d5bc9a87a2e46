"""Drawing the next token of each row from its own seeded generator, so that a request's text does
not depend on which other requests share its batch.

Two ways; ``LocalBackend(sampling=...)`` chooses, by default by where the model runs:

* :func:`sample_row`, one row at a time on the host. On a CPU the logits are already there, and
  sorting only the tokens that can be in the top-p nucleus keeps a row at 0.3–0.6 ms (SmolLM2's real
  distributions, 2 cores, temperature 0.7–1.0).
* :func:`sample_rows`, all rows at once where the logits are. On a GPU the row-by-row way copies
  the logits to the host every step and draws there row by row: with the demo's simulation on an H200
  (random-weight SmolLM2 stand-ins) that, not the model, bounded decoding at about 1,100 tokens/s;
  drawn on the device, the same simulation ran at 2,640 (two machines of the same kind). Softmax, the
  nucleus and the draw run as batched device kernels, and only the chosen token ids come back. Each
  row still draws from its own generator (on the device), the same number of uniforms whatever its
  batch.

Both draw by the exponential race (:func:`_draw`), so the two give the same distribution; they do
not give the same tokens for a seed (the generators differ, as do the devices' numbers).
"""

from __future__ import annotations

import torch


def sample_row(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """One token from one row of logits (on the host)."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        # Only tokens of probability >= (1 - top_p) / vocabulary can be in the nucleus: together the
        # others hold less than 1 - top_p, so the tokens above them already reach top_p. Sorting
        # those few instead of the whole vocabulary gives the same nucleus, much faster.
        candidates = (probs >= (1.0 - top_p) / probs.numel()).nonzero().squeeze(1)
        sorted_probs, order = probs[candidates].sort(descending=True)
        sorted_probs = sorted_probs * (sorted_probs.cumsum(-1) - sorted_probs < top_p)
        return int(candidates[order[_draw(sorted_probs, generator)]])
    return _draw(probs, generator)


def _draw(weights: torch.Tensor, generator: torch.Generator) -> int:
    """An index drawn in proportion to ``weights``: the largest ``weight / E`` with one exponential
    ``E = -log U`` per index (the exponential race). Over a 49k-token vocabulary 0.22 ms, where
    ``torch.multinomial`` takes 0.87 ms (a tenth of a GRPO rollout's time went there), mostly in its
    exponential sampler. A zero weight is never drawn. Unlike inverting the running sum, which is
    faster still, a change of the weights by rounding (a row batched with others or alone) changes
    the draw only when the two best ratios tie to rounding, so a request's text stays independent of
    its batch."""
    race = torch.empty_like(weights).uniform_(generator=generator).log_().neg_()
    return int((weights / race).argmax())


def sample_rows(logits: torch.Tensor, temperatures: list[float], top_ps: list[float],
                generators: list[torch.Generator | None]) -> list[int]:
    """One token for each row of ``logits`` (rows × vocabulary, on any device), in one batch of
    kernels. A row whose generator is ``None`` (finished, waiting to leave the batch) draws nothing
    and gets token 0; a row of temperature 0 takes its most likely token."""
    rows, vocabulary = logits.shape
    device = logits.device
    temperature = torch.tensor(temperatures, dtype=torch.float32, device=device).unsqueeze(1)
    top_p = torch.tensor(top_ps, dtype=torch.float32, device=device).unsqueeze(1)
    probs = torch.softmax(logits.float() / temperature.clamp_min(1e-6), dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    in_nucleus = (sorted_probs.cumsum(-1) - sorted_probs < top_p) | (top_p >= 1.0)
    race = torch.full((rows, vocabulary), 0.5, dtype=torch.float32, device=device)  # rows that draw nothing
    for k, (g, t) in enumerate(zip(generators, temperatures)):
        if g is not None and t > 0:
            race[k].uniform_(generator=g)
    race.log_().neg_()
    drawn = order.gather(1, (sorted_probs * in_nucleus / race).argmax(-1, keepdim=True)).squeeze(1)
    tokens = torch.where(temperature.squeeze(1) <= 0, logits.argmax(-1), drawn)
    waiting = torch.tensor([g is None for g in generators], device=device)
    return tokens.masked_fill(waiting, 0).tolist()
