"""Drawing next tokens: the batched (device-side) sampler draws from the same distribution as the
row-by-row one, keeps the nucleus, and leaves a row's draws independent of its batch. Run here on
the CPU, the path a GPU takes."""

from __future__ import annotations

import pytest
import torch

from rlff_esc.llm.base import GenerationRequest
from rlff_esc.llm.sampling import _draw, sample_row, sample_rows

PROBS = torch.tensor([0.5, 0.3, 0.15, 0.05])


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _frequencies(draw, n: int = 4000) -> torch.Tensor:
    counts = torch.zeros(len(PROBS))
    for _ in range(n):
        counts[draw()] += 1
    return counts / n


@pytest.mark.parametrize("top_p, expected", [(1.0, PROBS), (0.7, torch.tensor([0.625, 0.375, 0.0, 0.0]))])
def test_batched_and_row_by_row_draw_from_the_same_nucleus(top_p, expected):
    """At top-p 0.7 the nucleus is the two most likely tokens (0.5 + 0.3 reaches it), renormalised;
    4,000 draws put each frequency within 0.03 of its probability (about 4 standard errors)."""
    logits = PROBS.log()
    batched, row = _generator(0), _generator(0)
    by_batch = _frequencies(lambda: sample_rows(logits.unsqueeze(0), [1.0], [top_p], [batched])[0])
    by_row = _frequencies(lambda: sample_row(logits, 1.0, top_p, row))
    assert (by_batch - expected).abs().max() < 0.03, by_batch
    assert (by_row - expected).abs().max() < 0.03, by_row
    assert by_batch[expected == 0].sum() == 0 and by_row[expected == 0].sum() == 0


def test_a_row_draws_the_same_alone_and_in_any_batch():
    """Three steps of one seeded row, alone and as the middle row of a mixed batch."""
    torch.manual_seed(0)
    logits = torch.randn(5, 300)
    alone_generator = _generator(7)
    alone = [sample_rows(logits[2:3], [0.9], [0.95], [alone_generator])[0] for _ in range(3)]
    generators = [_generator(seed) for seed in (1, 2, 7, 3, 4)]
    in_batch = [sample_rows(logits, [1.0, 0.0, 0.9, 0.7, 1.2], [1.0, 1.0, 0.95, 0.5, 0.9], generators)[2]
                for _ in range(3)]
    assert in_batch == alone


def test_greedy_rows_draw_nothing_and_waiting_rows_get_token_zero():
    """A row of temperature 0 takes its most likely token without using its generator; a finished row
    waiting to leave the batch (generator None) gets 0."""
    torch.manual_seed(1)
    logits = torch.randn(3, 50)
    greedy = _generator(5)
    state = greedy.get_state()
    tokens = sample_rows(logits, [0.0, 1.0, 1.0], [0.9, 0.9, 0.9], [greedy, None, _generator(2)])
    assert tokens[0] == int(logits[0].argmax()) and tokens[1] == 0
    assert torch.equal(greedy.get_state(), state)


def test_backend_sampling_on_the_device_keeps_seeds_and_batch_independence(tiny_lm_dir):
    from rlff_esc.llm.local import LocalBackend

    backend = LocalBackend(str(tiny_lm_dir), batch_size=8, dtype="float32", sampling="device")
    system = {"role": "system", "content": "You are a caring listener."}
    requests = [GenerationRequest([system, {"role": "user", "content": f"Day {i} was hard."}], seed=i,
                                  max_new_tokens=3 + i, temperature=0.9, top_p=0.95) for i in range(6)]
    batched = backend.generate(requests)
    alone = [backend.generate([r])[0] for r in requests]
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone]
    assert [g.token_ids for g in backend.generate(requests)] == [g.token_ids for g in batched]
    assert len({tuple(g.token_ids[:3]) for g in batched}) > 1
    with pytest.raises(ValueError, match="sampling"):
        LocalBackend("x", model=backend.model, tokenizer=backend.tokenizer, sampling="gpu")


def test_draws_follow_the_weights_and_never_pick_a_zero_weight():
    weights = torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0])
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([_draw(weights, generator) for _ in range(4000)]), minlength=5)
    assert counts[1] == counts[4] == 0
    assert torch.allclose(counts.float() / 4000, weights, atol=0.03)
    first, second = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert [_draw(weights, first) for _ in range(20)] == [_draw(weights, second) for _ in range(20)]
