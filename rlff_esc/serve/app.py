"""An OpenAI-compatible HTTP server for a policy: ``/v1/chat/completions`` (streaming and not),
``/v1/models``, ``/health``, and the chat page at ``/``.

The reasoning is returned as ``reasoning_content`` and only the reply as ``content`` (the field
names vLLM and DeepSeek use), so any OpenAI client shows just the reply. Errors use OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, so clients report them properly.

Streaming: the local backend decodes a whole batch at once, so the reply is generated first and then
sent as ``chat.completion.chunk`` events, one per word (reasoning first, then the reply), ending with
``data: [DONE]``. Clients see the standard stream; the first word waits for the whole reply.

Hostile or careless clients: request bytes, the rendered prompt's tokens, ``max_tokens`` and ``seed``
are bounded (400/413 naming the limit); at most ``max_pending`` requests are admitted at once and the
rest get 503 with ``Retry-After``; a request unanswered after ``request_timeout_s`` gets 504, and one
whose client disconnects is dropped from the queue. Bodies must be ``application/json`` (415), which
also means a web page cannot post to the server without a CORS preflight the server never grants; with
authentication off (loopback only) the ``Host`` header must name a loopback host (403), which stops
DNS rebinding from reading replies. ``/health`` gives the model's name, never its path.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from rlff_esc.config import Config, ServeSection
from rlff_esc.errors import RlffError
from rlff_esc.safety.layer import NOT_SCREENED
from rlff_esc.serve.queue import BatchingQueue, RequestCancelled
from rlff_esc.serve.responder import ConversationError, PromptTooLong, Reply, Responder, build_responder

log = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_SEED = 2**63 - 1  # what every backend's random generator accepts
RETRY_AFTER_S = 2


class APIError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        headers = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": str(RETRY_AFTER_S)}}.get(self.status)
        return JSONResponse(body, status_code=self.status, headers=headers)


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat request that this server honours; others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[dict] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False
    stream_options: dict | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    n: int | None = 1
    logprobs: bool | None = None


def create_app(responder: Responder, *, api_key: str | None, model_id: str | None = None,
               max_tokens: int = 512, max_request_bytes: int = 64_000, max_pending: int = 64,
               request_timeout_s: float = 120.0) -> FastAPI:
    """The server app. ``api_key=None`` turns authentication off (the CLI allows that on loopback only)."""
    model_id = model_id or public_model_id(responder.name)
    app = FastAPI(title="rlff-esc policy server", docs_url=None, redoc_url=None, openapi_url=None)
    admitted = 0  # requests generating or queued; changed on the event loop only
    cancellable = isinstance(responder.backend, BatchingQueue)

    @app.exception_handler(APIError)
    async def _api_error(request, exc: APIError):
        return exc.response()

    if api_key is None:
        @app.middleware("http")
        async def loopback_host_only(request: Request, call_next):
            host = _host_name(request.headers.get("host", ""))
            if host not in LOOPBACK_HOSTS:
                return APIError(403, f"Host {host!r} is not allowed: without an API key this server only "
                                     f"answers requests addressed to {', '.join(LOOPBACK_HOSTS)}",
                                code="host_not_allowed").response()
            return await call_next(request)

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    async def answer(request: Request, job) -> Reply | None:
        """Run ``job(cancel)`` in a thread; None when the client went away. The request stays
        admitted until its thread ends, so cancelled work still counts against ``max_pending``."""
        nonlocal admitted
        if admitted >= max_pending:
            raise APIError(503, f"the server is busy ({max_pending} requests in progress); retry in "
                                f"{RETRY_AFTER_S} s", code="server_busy", kind="server_error")
        admitted += 1
        cancel = threading.Event()
        task = asyncio.ensure_future(run_in_threadpool(job, cancel if cancellable else None))

        def release(t: asyncio.Future) -> None:
            nonlocal admitted
            admitted -= 1
            if not t.cancelled():
                t.exception()  # retrieved: a cancelled request's error is expected

        task.add_done_callback(release)
        deadline = time.monotonic() + request_timeout_s
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            if task.done():
                break
            if await request.is_disconnected():
                cancel.set()
                return None
            if time.monotonic() > deadline:
                cancel.set()
                raise APIError(504, f"no reply within {request_timeout_s:g} s; the request was cancelled",
                               code="timeout", kind="server_error")
        return task.result()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_id, "auth": api_key is not None}  # no paths, no settings

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/v1/models")
    async def models(request: Request):
        authorize(request)
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0,
                                            "owned_by": "rlff-esc"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        authorize(request)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise APIError(415, "send the request body as JSON with 'Content-Type: application/json'",
                           code="unsupported_media_type")
        body = await _read_body(request, max_request_bytes)
        req = _parse_request(body)
        budget = req.max_completion_tokens or req.max_tokens
        if budget is not None and not 1 <= budget <= max_tokens:
            raise APIError(400, f"max_tokens must be between 1 and {max_tokens} on this server, got {budget}",
                           param="max_tokens", code="max_tokens_out_of_range")
        if (req.n or 1) != 1:
            raise APIError(400, "only n=1 is supported", param="n")
        if req.logprobs:
            raise APIError(400, "logprobs are not supported by this server", param="logprobs")
        stop = [req.stop] if isinstance(req.stop, str) else req.stop

        def job(cancel):
            return responder.respond([req.messages], seeds=[req.seed], stop=stop, temperature=req.temperature,
                                     top_p=req.top_p, max_new_tokens=budget, cancel=cancel)[0]

        try:
            reply = await answer(request, job)
        except PromptTooLong as e:
            raise APIError(400, str(e), param="messages", code="prompt_too_long") from None
        except ConversationError as e:
            raise APIError(400, str(e), param="messages") from None
        except (APIError, RequestCancelled):
            raise
        except Exception:
            log.exception("generation failed")
            raise APIError(500, "the model failed to generate a reply; see the server log",
                           kind="server_error") from None
        if reply is None:  # the client disconnected; nobody reads this
            return Response(status_code=499)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(_chunks(reply, completion_id, created, model_id, usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        message = {"role": "assistant", "content": reply.content, "reasoning_content": reply.reasoning or None}
        result = {"id": completion_id, "object": "chat.completion", "created": created, "model": model_id,
                  "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason,
                               "logprobs": None}],
                  "usage": _usage(reply)}
        result.update(_safety(reply))
        return result

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_big = APIError(413, f"request body larger than {limit} bytes", code="request_too_large")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_big
    return bytes(body)


def _parse_request(body: bytes) -> ChatRequest:
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise APIError(400, f"request body is not valid JSON: {e}") from None
    try:
        return ChatRequest.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise APIError(400, f"{where}: {first['msg']}" if where else first["msg"], param=where) from None


def _safety(reply: Reply) -> dict:
    """The ``safety`` field of a response: the flag that replaced the policy's reply, and the user turns
    that were not screened (not English); absent when neither applies."""
    out = reply.flag.to_dict() if reply.flag else {}
    if reply.unscreened:
        out.update(unscreened_turns=reply.unscreened, notice=NOT_SCREENED)
    return {"safety": out} if out else {}


def _host_name(host: str) -> str:
    """The host of a Host header, without its port ("[::1]:8000" → "::1")."""
    if host.startswith("["):
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def public_model_id(name: str) -> str:
    """A model's name for clients: a folder's last part, never its whole path."""
    return Path(name).name or name


def _usage(reply: Reply) -> dict:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens}


def _chunks(reply: Reply, completion_id: str, created: int, model_id: str, include_usage: bool):
    def event(delta: dict, finish: str | None = None, **extra) -> str:
        chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_id,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    for piece in _words(reply.reasoning):
        yield event({"reasoning_content": piece})
    for piece in _words(reply.content):
        yield event({"content": piece})
    yield event({}, reply.finish_reason, **_safety(reply))
    if include_usage:
        chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_id,
                 "choices": [], "usage": _usage(reply)}
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _words(text: str) -> list[str]:
    """Pieces that join back to exactly ``text``: each word with the spaces before it."""
    return re.findall(r"\s*\S+", text) if text else []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(host: str, api_key: str | None, no_auth: bool, env_var: str) -> str | None:
    """The key the server requires, or None with ``--no-auth`` (refused unless on loopback)."""
    if no_auth:
        if not is_loopback(host):
            raise RlffError(f"--no-auth is only allowed on a loopback host (127.0.0.1, ::1, localhost), not "
                            f"{host!r}: anyone on the network could use the model. Set an API key instead.")
        return None
    key = api_key or os.environ.get(env_var)
    if not key:
        raise RlffError(f"no API key: pass --api-key or set ${env_var} (clients send it as "
                        f"'Authorization: Bearer <key>'), or use --no-auth on a loopback host")
    return key


def run_server(responder: Responder, serve_cfg: ServeSection, *, api_key: str | None, model_id: str | None = None,
               host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted. Give the responder a :class:`BatchingQueue` as its backend so that
    concurrent requests are generated together (``serve_policy`` does)."""
    import uvicorn

    app = create_app(responder, api_key=api_key, model_id=model_id, max_tokens=serve_cfg.max_tokens,
                     max_request_bytes=serve_cfg.max_request_bytes, max_pending=serve_cfg.max_pending,
                     request_timeout_s=serve_cfg.request_timeout_s)
    host, port = host or serve_cfg.host, port if port is not None else serve_cfg.port
    log.info("serving %s on http://%s:%d (auth %s); chat page at http://%s:%d/", model_id or responder.name,
             host, port, "on" if api_key else "off", host, port)
    uvicorn.run(app, host=host, port=port, log_level="info")


def serve_policy(policy: str, config: Config, *, api_key: str | None, reasoning: bool | None = None,
                 model_id: str | None = None, host: str | None = None, port: int | None = None) -> None:
    """Load a policy (folder or model name) and serve it with the config's safety and limits."""
    from rlff_esc.llm.registry import load_local

    serve_cfg = config.serve
    backend = load_local(config.models.policy, policy, batch_size=serve_cfg.max_batch)
    batcher = BatchingQueue(backend, max_batch=serve_cfg.max_batch, max_wait_ms=serve_cfg.batch_wait_ms)
    responder = build_responder(policy, config, reasoning=reasoning, backend=batcher)
    try:
        run_server(responder, serve_cfg, api_key=api_key, model_id=model_id, host=host, port=port)
    finally:
        batcher.close()
