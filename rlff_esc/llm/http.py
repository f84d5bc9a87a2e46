"""OpenAI-compatible HTTP backend: vLLM (`vllm serve`), a llama.cpp server, `rlff-esc serve`, or a
hosted API.

Requests of one ``generate`` call run concurrently (bounded by ``max_concurrency``) and are spread
round-robin over several ``base_urls`` (replicas). 429, 5xx, timeouts and refused connections are
retried with exponential backoff, moving to the next replica; when every try fails, the error names
the URL and the setting to check.

``loglikelihood`` needs prompt log-probabilities, which chat endpoints do not return. Where a server
offers the legacy ``/v1/completions`` endpoint with ``echo`` and ``logprobs`` (vLLM does), the
conversation is rendered with the model's chat template (a local tokenizer named by ``tokenizer``,
default the model name) and the continuation's token log-probabilities are summed. Where the server
says it does not (HTTP 400 or 404 on ``/completions``, or an answer without ``logprobs``),
:class:`LoglikelihoodUnsupported` is raised; the critic probes for it once when it is built and then
scores by sampling. Any other failure (retries exhausted, 401, timeouts) is an error, never a reason to
change how conversations are judged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os

import httpx

from rlff_esc.errors import BackendError
from rlff_esc.llm.base import Generation, GenerationRequest, LoglikelihoodUnsupported, Message

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
UNSUPPORTED_STATUS = {400, 404}  # what a server without an endpoint or an option answers


class HTTPStatusError(BackendError):
    """A server answered with an error status that retrying does not change."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class HTTPBackend:
    def __init__(self, model: str, *, base_urls: list[str], api_key_env: str | None = None,
                 max_concurrency: int = 16, timeout_s: float = 120.0, max_retries: int = 4,
                 backoff_s: float = 0.5, tokenizer: str | None = None):
        if not base_urls:
            raise BackendError(f"HTTP backend for {model!r}: no base_urls configured "
                               "(set models.<role>.base_urls, e.g. [http://127.0.0.1:8000/v1])")
        self.name = model
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key_env and not self.api_key:
            raise BackendError(f"environment variable {api_key_env} (models.<role>.api_key_env) is not set")
        self.max_concurrency, self.timeout_s = max_concurrency, timeout_s
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.tokenizer_name = tokenizer or model
        self._tokenizer = None
        self._next_url = itertools.cycle(range(len(self.base_urls)))
        self.stats = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "retries": 0}

    # -- plumbing ------------------------------------------------------------------------------------
    def _run(self, coro):
        """Run a coroutine to completion, also when the caller is itself inside an event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    async def _post(self, client: httpx.AsyncClient, path: str, payload: dict, first_url: int) -> dict:
        last_error = ""
        for attempt in range(self.max_retries + 1):
            url = f"{self.base_urls[(first_url + attempt) % len(self.base_urls)]}{path}"
            try:
                response = await client.post(url, json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last_error = f"{url}: {type(e).__name__}: {e or 'no answer'}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise BackendError(f"{url}: answered 200 with a body that is not JSON: "
                                           f"{response.text[:200]!r}") from None
                if response.status_code not in RETRY_STATUS:
                    raise HTTPStatusError(f"{url}: HTTP {response.status_code}: {response.text[:300]}",
                                          response.status_code)
                last_error = f"{url}: HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    await asyncio.sleep(min(float(retry_after), 30.0))
            if attempt < self.max_retries:
                self.stats["retries"] += 1
                log.warning("retrying after %s (attempt %d of %d)", last_error, attempt + 1, self.max_retries)
                await asyncio.sleep(self.backoff_s * 2 ** attempt)
        raise BackendError(f"cannot get an answer after {self.max_retries + 1} tries; last: {last_error} "
                           f"(is the server running? check models.<role>.base_urls)")

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.max_concurrency)
        return httpx.AsyncClient(headers=headers, timeout=self.timeout_s, limits=limits)

    async def _gather(self, payloads: list[dict], path: str) -> list[dict]:
        semaphore = asyncio.Semaphore(self.max_concurrency)
        async with self._client() as client:
            async def one(payload):
                async with semaphore:
                    self.stats["requests"] += 1
                    return await self._post(client, path, payload, next(self._next_url))
            return await asyncio.gather(*(one(p) for p in payloads))

    # -- generate --------------------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        payloads = []
        for r in requests:
            payload = {"model": self.name, "messages": r.messages, "max_tokens": r.max_new_tokens,
                       "temperature": r.temperature, "top_p": r.top_p}
            if r.stop:
                payload["stop"] = r.stop
            if r.seed is not None:
                payload["seed"] = r.seed
            payloads.append(payload)
        bodies = self._run(self._gather(payloads, "/chat/completions"))
        return [self._generation(body) for body in bodies]

    def _generation(self, body: dict) -> Generation:
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{self.base_urls[0]}: the answer has no choices[0].message.content: "
                               f"{str(body)[:200]}") from None
        usage = body.get("usage") or {}
        self.stats["prompt_tokens"] += usage.get("prompt_tokens", 0)
        self.stats["completion_tokens"] += usage.get("completion_tokens", 0)
        return Generation(text=text.strip(), prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0),
                          finish_reason="length" if choice.get("finish_reason") == "length" else "stop")

    # -- loglikelihood ---------------------------------------------------------------------------------
    def _render(self, messages: list[Message]) -> str:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from rlff_esc.llm.embedded import resolve_model

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(resolve_model(self.tokenizer_name))
            except OSError as e:
                raise LoglikelihoodUnsupported(
                    f"loglikelihood over HTTP renders the chat template locally, but no tokenizer "
                    f"{self.tokenizer_name!r} is available here ({e}); use critic scoring 'sample'") from None
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def loglikelihood(self, requests: list[tuple[list[Message], str]]) -> list[float]:
        prompts = [self._render(m) for m, _ in requests]
        payloads = [{"model": self.name, "prompt": p + c, "max_tokens": 0, "echo": True, "logprobs": 0,
                     "temperature": 0.0} for p, (_, c) in zip(prompts, requests)]
        try:
            bodies = self._run(self._gather(payloads, "/completions"))
        except HTTPStatusError as e:
            if e.status not in UNSUPPORTED_STATUS:
                raise
            raise LoglikelihoodUnsupported(f"the server gives no prompt log-probabilities ({e}); "
                                           "use critic scoring 'sample'") from None
        scores = []
        for body, prompt in zip(bodies, prompts):
            self.stats["prompt_tokens"] += (body.get("usage") or {}).get("prompt_tokens", 0)
            try:
                lp = body["choices"][0]["logprobs"]
                pairs = zip(lp["text_offset"], lp["token_logprobs"])
                scores.append(sum(v for off, v in pairs if off >= len(prompt) and v is not None))
            except (KeyError, IndexError, TypeError):
                raise LoglikelihoodUnsupported(
                    f"{self.base_urls[0]}/completions: no echo logprobs in the answer; use critic scoring 'sample'") from None
        return scores
