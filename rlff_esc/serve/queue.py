"""A batching queue in front of a backend, so that concurrent requests share one ``generate`` call.

Batched decoding is several times faster than one request at a time, and a server's requests arrive
one by one from different connections. A single worker thread takes the first waiting request, waits
up to ``max_wait_ms`` for more (up to ``max_batch``), and generates them together; requests that
arrive while a batch is decoding wait and form the next batch.

The queue has the backend's own ``generate`` signature, so anything that takes a backend (the
:class:`~rlff_esc.serve.responder.Responder`) can take the queue instead. ``generate`` also takes a
``cancel`` event: when it is set (the client went away, or the request timed out) the requests that
have not started decoding are dropped from the queue; a batch already decoding runs to its end (the
backend decodes a batch as a whole) and its result for a cancelled request is thrown away.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, wait

from rlff_esc.errors import RlffError
from rlff_esc.llm.base import ChatBackend, Generation, GenerationRequest

log = logging.getLogger(__name__)


class RequestCancelled(RlffError):
    """The caller cancelled requests before they were answered."""


class BatchingQueue:
    def __init__(self, backend: ChatBackend, *, max_batch: int = 16, max_wait_ms: float = 20.0):
        self.backend, self.name = backend, backend.name
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.batches = 0  # generate calls made, for logs and tests
        if hasattr(backend, "prompt_tokens"):  # the responder bounds prompts with it
            self.prompt_tokens = backend.prompt_tokens
        self._pending: queue.Queue[tuple[GenerationRequest, Future] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="rlff-esc-batcher", daemon=True)
        self._worker.start()

    def submit(self, request: GenerationRequest) -> Future:
        """Queue one request; the future resolves to its :class:`Generation`."""
        future: Future = Future()
        self._pending.put((request, future))
        return future

    def generate(self, requests: list[GenerationRequest], cancel: threading.Event | None = None) -> list[Generation]:
        """Same contract as ``ChatBackend.generate``; blocks until every request is done, or raises
        :class:`RequestCancelled` soon after ``cancel`` is set."""
        futures = [self.submit(r) for r in requests]
        while cancel is not None and wait(futures, timeout=0.05).not_done:
            if cancel.is_set():
                for f in futures:
                    f.cancel()
                raise RequestCancelled(f"{len(requests)} request(s) cancelled")
        return [f.result() for f in futures]

    def loglikelihood(self, requests):
        return self.backend.loglikelihood(requests)

    def close(self) -> None:
        self._pending.put(None)
        self._worker.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            batch = [item]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    item = self._pending.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._pending.put(None)  # stop after this batch
                    break
                batch.append(item)
            live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
            if not live:
                continue
            self.batches += 1
            log.debug("generating a batch of %d", len(live))
            try:
                outputs = self.backend.generate([r for r, _ in live])
            except Exception as e:  # hand the error to every waiting request; keep serving
                log.exception("generation failed for a batch of %d", len(live))
                for _, f in live:
                    f.set_exception(e)
                continue
            for (_, f), out in zip(live, outputs):
                f.set_result(out)
