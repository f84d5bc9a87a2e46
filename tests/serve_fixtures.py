"""Session fixtures for the serving tests: the safety layer (MiniLM) and a real uvicorn server on
127.0.0.1 serving the tiny model through the batching queue, exactly as ``rlff-esc serve`` wires it.
Test modules import the fixtures they use from here."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from openai_test_server import ServerThread
from rlff_esc.llm.local import LocalBackend
from rlff_esc.serve.app import create_app
from rlff_esc.serve.queue import BatchingQueue
from rlff_esc.serve.responder import Responder
from rlff_esc.safety.layer import SafetyLayer

API_KEY = "test-key-123"


class CountingBackend:
    """The real backend, counting the ``generate`` calls and the requests in each."""

    def __init__(self, backend):
        self.backend, self.name, self.calls = backend, backend.name, []

    def generate(self, requests):
        self.calls.append(len(requests))
        return self.backend.generate(requests)

    def loglikelihood(self, requests):
        return self.backend.loglikelihood(requests)


@dataclass
class Served:
    url: str
    backend: CountingBackend
    batcher: BatchingQueue
    model_id: str


@pytest.fixture(scope="session")
def safety_layer(minilm_dir, tmp_path_factory) -> SafetyLayer:
    return SafetyLayer(country="US", log_path=tmp_path_factory.mktemp("safety") / "flags.jsonl")


@pytest.fixture(scope="session")
def served(tiny_lm_dir, safety_layer):
    backend = CountingBackend(LocalBackend(str(tiny_lm_dir), batch_size=8))
    batcher = BatchingQueue(backend, max_batch=8, max_wait_ms=50)
    # temperature 1: the tiny model's greedy tokens decode to nothing; seeds keep replies reproducible
    responder = Responder(batcher, safety=safety_layer, reasoning=True, temperature=1.0, max_new_tokens=12)
    app = create_app(responder, api_key=API_KEY, model_id="tiny-policy", max_tokens=64, max_request_bytes=4096)
    server = ServerThread(app).start()
    yield Served(f"http://127.0.0.1:{server.port}", backend, batcher, "tiny-policy")
    server.stop()
    batcher.close()
