"""The training loss's LM head on the CPU: only labelled positions are projected, and the loss and
gradients are those of TRL's full projection."""

from __future__ import annotations

import torch

from rlff_esc.policy.lm_head import labelled_positions


def _loss_and_grads(model, batch: dict, counted: list[int]):
    model.zero_grad()
    out = model(**batch, fused_lm_head=True)
    loss = -out.log_probs.sum() / out.label_mask.sum()
    loss.backward()
    counted_now = counted[-1]
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads, counted_now


def test_labelled_positions_projects_only_labelled_tokens_with_the_same_loss_and_gradients(tiny_lm_dir, monkeypatch):
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model)
    counted: list[int] = []
    kernel = trl_utils._ChunkedLogProbFunction

    class Counting:
        @staticmethod
        def apply(hidden, *args):
            counted.append(hidden.shape[0])
            return kernel.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Counting)
    torch.manual_seed(0)
    ids = torch.randint(5, 500, (3, 20))
    mask = torch.ones_like(ids)
    mask[2, 15:] = 0  # a padded row
    labels = ids.clone()
    labels[:, :12] = -100  # the prompt
    labels[mask == 0] = -100
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}

    full_loss, full_grads, full_count = _loss_and_grads(model, batch, counted)
    with labelled_positions():
        compact_loss, compact_grads, compact_count = _loss_and_grads(model, batch, counted)
    after_loss, _, after_count = _loss_and_grads(model, batch, counted)

    labelled = int((labels[:, 1:] != -100).sum())
    assert full_count == 3 * 19 and compact_count == labelled < full_count
    assert after_count == full_count  # the switch is undone on leaving
    assert abs(compact_loss - full_loss) < 1e-5 and after_loss == full_loss
    assert full_grads.keys() == compact_grads.keys() and full_grads
    for name, grad in full_grads.items():
        torch.testing.assert_close(compact_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_labelled_positions_can_be_switched_off():
    import trl.trainer.utils as trl_utils

    before = trl_utils._use_triton
    with labelled_positions("trl"):
        assert trl_utils._use_triton is before
    with labelled_positions():
        assert trl_utils._use_triton(torch.device("cpu"))
    assert trl_utils._use_triton is before
