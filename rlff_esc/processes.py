"""Which process writes: training stages launched on several processes (``accelerate launch``).

Under a data-parallel launch every process runs the same stage, but a stage folder is opened,
swapped in and recorded once, by the main process; the others train beside it and leave. The process
layout comes from accelerate's ``PartialState``, built as the trainers build theirs (on the CPU where
there is no GPU, so that a CPU launch joins the same gloo process group rather than starting none).
In a single process that process is the main one and nothing waits.
"""

from __future__ import annotations

from typing import Callable


def _state():
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    return _state().is_main_process


def process_count() -> int:
    return _state().num_processes


def on_main_process(work: Callable[[], None]) -> None:
    """Run ``work`` on the main process while the others wait for it to finish."""
    state = _state()
    if state.is_main_process:
        work()
    state.wait_for_everyone()
