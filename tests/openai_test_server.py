"""A small OpenAI-compatible server over the local backend, started by tests on 127.0.0.1.

It answers ``/v1/chat/completions`` through :class:`LocalBackend` and ``/v1/completions`` with
``echo`` + ``logprobs`` (as vLLM does; ``completions=False`` leaves it out), and can be told to fail the first requests with 503, or to require an API key, so that
the client's retries are exercised against a real socket.
"""

from __future__ import annotations

import socket
import threading
import time

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from rlff_esc.llm.base import GenerationRequest
from rlff_esc.llm.local import LocalBackend


def make_app(backend: LocalBackend, fail_first: int = 0, completions: bool = True,
             api_key: str | None = None) -> FastAPI:
    app = FastAPI()
    state = {"failures_left": fail_first, "chat_calls": 0}
    app.state.counters = state

    @app.middleware("http")
    async def inject_failures(request: Request, call_next):
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "invalid API key"}}, status_code=401)
        if state["failures_left"] > 0:
            state["failures_left"] -= 1
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        return await call_next(request)

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        state["chat_calls"] += 1
        g = backend.generate([GenerationRequest(
            body["messages"], max_new_tokens=body.get("max_tokens", 32), temperature=body.get("temperature", 0.0),
            top_p=body.get("top_p", 1.0), stop=body.get("stop") or [], seed=body.get("seed"))])[0]
        return {"id": "x", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": g.text},
                             "finish_reason": g.finish_reason}],
                "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens}}

    if not completions:  # like a chat-only server (many hosted APIs): no prompt log-probabilities
        return app

    @app.post("/v1/completions")
    def completions_endpoint(body: dict):
        tok, model = backend.tokenizer, backend.model
        enc = tok(body["prompt"], add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor([enc["input_ids"]])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits.float(), -1)[0]
        token_logprobs = [None] + [float(logprobs[i - 1, t]) for i, t in enumerate(enc["input_ids"]) if i > 0]
        return {"choices": [{"text": body["prompt"], "logprobs": {
            "tokens": tok.convert_ids_to_tokens(enc["input_ids"]), "token_logprobs": token_logprobs,
            "text_offset": [start for start, _ in enc["offset_mapping"]]}}]}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn in a background thread, stopped by :meth:`stop`."""

    def __init__(self, app: FastAPI):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ServerThread":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
