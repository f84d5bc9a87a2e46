"""TRL's fused LM head, scoring only the positions that carry a label on a CPU too.

TRL's trainers compute the loss through a fused head that projects hidden states onto the vocabulary
in tiles, without building the whole logits tensor. Where Triton runs (CUDA, XPU) it projects only
the positions with a label; elsewhere every position, prompt and padding included, because on an
accelerator that compiles per shape a changing count would recompile. A CPU runs eagerly and
compiles nothing, so there the full projection is only waste: a warm-up example is about 80% prompt,
and on the demo the head took 1.6 s of each 4.6 s SFT step (2 cores, 4 examples of about 230
tokens). :func:`labelled_positions` makes TRL take its compact path on the CPU while a trainer
trains. The loss and the gradients are the same sums over the same positions: the demo's warm-up
logged the same losses, its policy checked the same to the last digit, and its steps took 2.3 s.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def labelled_positions(lm_head: str = "auto"):
    """With ``lm_head`` "auto" (``policy.lm_head``), while inside, TRL's fused head projects only
    labelled positions on the CPU as well; "trl" leaves it as it is, and so does a TRL without the
    switch this relies on."""
    import trl.trainer.utils as trl_utils

    triton_path = getattr(trl_utils, "_use_triton", None)
    if lm_head != "auto" or triton_path is None:
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or triton_path(device)
    try:
        yield
    finally:
        trl_utils._use_triton = triton_path
