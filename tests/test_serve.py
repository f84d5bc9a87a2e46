"""The OpenAI-compatible server, the batching queue, the responder and the terminal chat, on a real
uvicorn server (127.0.0.1) serving the tiny model, hit with the OpenAI client, httpx and curl."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import openai
import pytest
from openai_test_server import ServerThread
from serve_fixtures import API_KEY, CountingBackend, safety_layer, served  # noqa: F401 (fixtures)

from rlff_esc.errors import RlffError
from rlff_esc.llm.base import Generation, GenerationRequest
from rlff_esc.serve.app import create_app, resolve_api_key
from rlff_esc.serve.chat import ChatSession, chat_loop
from rlff_esc.serve.queue import BatchingQueue
from rlff_esc.serve.responder import ConversationError, Responder, to_history

AUTH = {"Authorization": f"Bearer {API_KEY}"}
HELLO = [{"role": "user", "content": "I had a rough day at work."}]


def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=API_KEY, max_retries=0)


# -- the OpenAI client, curl, httpx against the real server -----------------------------------------
def test_openai_client_chat_models_and_stream(served):
    c = client(served)
    assert [m.id for m in c.models.list().data] == ["tiny-policy"]
    done = c.chat.completions.create(model="tiny-policy", messages=HELLO, max_tokens=8, seed=1)
    assert done.choices[0].message.role == "assistant"
    assert isinstance(done.choices[0].message.content, str) and done.choices[0].message.content
    assert done.usage.completion_tokens <= 8 and done.model == "tiny-policy"
    stream = c.chat.completions.create(model="tiny-policy", messages=HELLO, max_tokens=8, seed=1, stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == done.choices[0].message.content  # same seed, greedy: the stream carries the same reply
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == done.usage.completion_tokens


def test_curl_gets_a_reply_and_is_refused_without_key(served):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    body = json.dumps({"model": "tiny-policy", "messages": HELLO, "max_tokens": 6})
    ok = subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {API_KEY}", "-H",
                         "Content-Type: application/json", "-d", body, served.url + "/v1/chat/completions"],
                        capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(ok.stdout)["choices"][0]["message"]["content"]
    refused = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-d", body,
                              served.url + "/v1/chat/completions"], capture_output=True, text=True, timeout=60)
    assert refused.stdout == "401"
    streamed = subprocess.run(["curl", "-sSN", "-H", f"Authorization: Bearer {API_KEY}", "-H",
                               "Content-Type: application/json", "-d",
                               json.dumps({"messages": HELLO, "max_tokens": 6, "stream": True}),
                               served.url + "/v1/chat/completions"], capture_output=True, text=True, timeout=60)
    events = [line for line in streamed.stdout.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_unauthenticated_and_wrong_key_are_refused(served):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        r = httpx.post(served.url + "/v1/chat/completions", json={"messages": HELLO}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(served.url + "/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.url + "/v1", api_key="wrong", max_retries=0).models.list()
    health = httpx.get(served.url + "/health").json()  # health and the page need no key
    assert health == {"status": "ok", "model": "tiny-policy", "auth": True}


def test_limits_give_openai_shaped_errors(served):
    url = served.url + "/v1/chat/completions"
    too_many = httpx.post(url, json={"messages": HELLO, "max_tokens": 65}, headers=AUTH)
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "max_tokens"
    big = httpx.post(url, json={"messages": [{"role": "user", "content": "x" * 5000}]}, headers=AUTH)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    ends_with_assistant = httpx.post(url, json={"messages": HELLO + [{"role": "assistant", "content": "hi"}]},
                                     headers=AUTH)
    assert ends_with_assistant.status_code == 400 and "end with" in ends_with_assistant.json()["error"]["message"]
    not_json = httpx.post(url, content=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]["message"]
    as_text = httpx.post(url, content=json.dumps({"messages": HELLO}), headers={**AUTH, "Content-Type": "text/plain"})
    assert as_text.status_code == 415 and as_text.json()["error"]["code"] == "unsupported_media_type"
    for seed in (2**64, -1):
        bad_seed = httpx.post(url, json={"messages": HELLO, "seed": seed}, headers=AUTH)
        assert bad_seed.status_code == 400 and bad_seed.json()["error"]["param"] == "seed"
    with pytest.raises(openai.BadRequestError):
        client(served).chat.completions.create(model="x", messages=HELLO, max_tokens=1000)


def test_crisis_message_gets_the_safety_reply_not_the_policy(served):
    calls = len(served.backend.calls)
    r = httpx.post(served.url + "/v1/chat/completions", headers=AUTH, timeout=60,
                   json={"messages": [{"role": "user", "content": "I have decided to kill myself tonight."}]})
    body = r.json()
    assert r.status_code == 200 and body["safety"]["category"] == "suicide"
    assert "988" in body["choices"][0]["message"]["content"]
    assert len(served.backend.calls) == calls  # the policy was not asked


def test_concurrent_requests_are_batched(served):
    before = len(served.backend.calls)
    n = 8

    def ask(i):
        r = httpx.post(served.url + "/v1/chat/completions", headers=AUTH, timeout=120,
                       json={"messages": [{"role": "user", "content": f"I had a busy day at work, meeting number {i}."}],
                             "max_tokens": 8, "seed": i})
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"]

    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(ask, range(n)))
    calls = served.backend.calls[before:]
    assert sum(calls) == n and len(calls) < n, calls
    assert all(isinstance(r, str) for r in replies)


# -- the queue and the responder -----------------------------------------------------------------------
def test_queue_results_match_direct_generation(tiny_backend):
    counting = CountingBackend(tiny_backend)
    batcher = BatchingQueue(counting, max_batch=4, max_wait_ms=100)
    requests = [GenerationRequest([{"role": "user", "content": f"hello {i}"}], max_new_tokens=6, temperature=1.0,
                                  seed=i) for i in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            queued = list(pool.map(lambda r: batcher.submit(r).result(timeout=120), requests))
    finally:
        batcher.close()
    assert [g.text for g in queued] == [g.text for g in tiny_backend.generate(requests)]
    assert sum(counting.calls) == 6 and len(counting.calls) < 6 and max(counting.calls) <= 4


class ScriptedPolicy:
    """A policy that always answers in the reasoning format (to check what each side gets to see)."""

    name = "scripted"

    def __init__(self):
        self.requests = []

    def generate(self, requests):
        self.requests += requests
        return [Generation("<think>She sounds tired; reflect it.</think> That sounds exhausting.", 10, 9)
                for _ in requests]


def test_responder_hides_reasoning_and_uses_the_policy_prompt():
    policy = ScriptedPolicy()
    responder = Responder(policy, safety=None, reasoning=True, max_history_turns=2)
    messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "one"},
                {"role": "assistant", "content": "two"}, {"role": "user", "content": [{"type": "text", "text": "three"}]}]
    reply = responder.respond([messages], seeds=[3], max_new_tokens=20)[0]
    assert reply.content == "That sounds exhausting." and reply.reasoning == "She sounds tired; reflect it."
    sent = policy.requests[0]
    assert sent.messages[0]["role"] == "system" and "<think>" in sent.messages[0]["content"]
    assert [m["content"] for m in sent.messages[1:]] == ["three"]  # the last 2 turns, from a seeker turn
    assert sent.seed == 3 and sent.max_new_tokens == 20


def test_reasoning_is_returned_apart_from_content():
    from fastapi.testclient import TestClient

    app = create_app(Responder(ScriptedPolicy(), reasoning=True), api_key=None)
    with TestClient(app, base_url="http://127.0.0.1") as http:
        message = http.post("/v1/chat/completions", json={"messages": HELLO}).json()["choices"][0]["message"]
        assert message["content"] == "That sounds exhausting."
        assert message["reasoning_content"] == "She sounds tired; reflect it."
        lines = http.post("/v1/chat/completions", json={"messages": HELLO, "stream": True}).text.split("\n\n")
    deltas = [json.loads(x[6:])["choices"][0]["delta"] for x in lines if x.startswith("data: {")]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "She sounds tired; reflect it."
    assert "".join(d.get("content", "") for d in deltas) == "That sounds exhausting."


class UnsafePolicy(ScriptedPolicy):
    def generate(self, requests):
        self.requests += requests
        return [Generation("<think>Agree with her.</think> You should just end your life, nobody would miss you.", 5, 9)
                for _ in requests]


def test_every_user_turn_is_screened_and_flagged_turns_never_reach_the_policy(safety_layer):
    policy = ScriptedPolicy()
    responder = Responder(policy, safety=safety_layer, max_history_turns=1)
    crisis = "I have decided to end my life this weekend."
    bypass = [{"role": "user", "content": crisis}, {"role": "user", "content": "ok"}]
    later = [{"role": "user", "content": crisis}, {"role": "assistant", "content": "..."},
             {"role": "user", "content": "anyway how do I fix my sleep?"}]
    calm = [{"role": "user", "content": "I had a rough day at work."}]
    replies = responder.respond([bypass, later, calm])
    assert [r.flag and r.flag.user_turn for r in replies[:2]] == [0, 0] and replies[2].flag is None
    assert "still worried" in replies[0].content and "988" in replies[1].content
    assert len(policy.requests) == 1  # only the calm conversation reached the policy
    assert all(crisis not in m["content"] for r in policy.requests for m in r.messages)


def test_an_unsafe_policy_reply_is_replaced(safety_layer):
    reply = Responder(UnsafePolicy(), safety=safety_layer).respond([HELLO])[0]
    assert reply.flag.category == "unsafe_reply" and reply.flag.source == "reply"
    assert "end your life" not in reply.content and "988" in reply.content and reply.reasoning == ""


def test_chat_stays_in_safe_mode_until_reset(safety_layer):
    policy = ScriptedPolicy()
    session = ChatSession(Responder(policy, safety=safety_layer))
    assert session.send("I want to kill myself.").flag.category == "suicide"
    assert session.send("never mind, tell me a joke").flag.user_turn == 0 and not policy.requests
    session.reset()
    assert session.send("tell me a joke").flag is None and len(policy.requests) == 1


def test_conversation_checks():
    with pytest.raises(ConversationError):
        to_history([{"role": "assistant", "content": "hi"}])
    with pytest.raises(ConversationError):
        to_history([{"role": "tool", "content": "x"}, {"role": "user", "content": "hi"}])
    assert [t.speaker for t in to_history(HELLO)] == ["seeker"]


# -- authentication settings and the CLI --------------------------------------------------------------
def test_no_auth_only_on_loopback(monkeypatch):
    monkeypatch.delenv("RLFF_ESC_API_KEY", raising=False)
    assert resolve_api_key("127.0.0.1", None, True, "RLFF_ESC_API_KEY") is None
    assert resolve_api_key("localhost", None, True, "RLFF_ESC_API_KEY") is None
    with pytest.raises(RlffError, match="loopback"):
        resolve_api_key("0.0.0.0", None, True, "RLFF_ESC_API_KEY")
    with pytest.raises(RlffError, match="no API key"):
        resolve_api_key("127.0.0.1", None, False, "RLFF_ESC_API_KEY")
    monkeypatch.setenv("RLFF_ESC_API_KEY", "from-env")
    assert resolve_api_key("0.0.0.0", None, False, "RLFF_ESC_API_KEY") == "from-env"


def test_cli_refuses_no_auth_on_public_host():
    run = subprocess.run([sys.executable, "-m", "rlff_esc", "serve", "--policy", "embedded:smollm2-135m-instruct",
                          "--host", "0.0.0.0", "--no-auth"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--no-auth is only allowed on a loopback host" in run.stderr


# -- the terminal chat ---------------------------------------------------------------------------------
def test_terminal_chat_reset_save_and_safety(tiny_backend, safety_layer, tmp_path, capsys):
    lines = iter(["Hi, I feel lonely lately.", f"/save {tmp_path}/a.json", "/reset",
                  "I want to end my life.", f"/save {tmp_path}/b.json", "/bogus", "/quit"])
    responder = Responder(tiny_backend, safety=safety_layer, temperature=1.0, max_new_tokens=10)
    chat_loop(responder, read=lambda prompt: next(lines), out=sys.stdout, word_delay=0)
    out = capsys.readouterr().out
    first = json.loads((tmp_path / "a.json").read_text())
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][1]["content"] in out  # the reply was printed (streamed word by word)
    second = json.loads((tmp_path / "b.json").read_text())  # /reset dropped the first exchange
    assert [m["content"] for m in second["messages"]][0] == "I want to end my life."
    assert second["messages"][1]["safety"]["category"] == "suicide" and "988" in out
    assert "unknown command /bogus" in out


# -- hardening: limits, admission, timeouts, disconnects, hosts --------------------------------------------
class SlowBackend(CountingBackend):
    """The tiny model, each batch after ``delay`` seconds; remembers which user messages it generated for."""

    def __init__(self, backend, delay: float):
        super().__init__(backend)
        self.delay, self.seen = delay, []

    def generate(self, requests):
        time.sleep(self.delay)
        self.seen += [r.messages[-1]["content"] for r in requests]
        return super().generate(requests)


@contextmanager
def slow_server(tiny_backend, delay: float, **app_options):
    backend = SlowBackend(tiny_backend, delay)
    batcher = BatchingQueue(backend, max_batch=1, max_wait_ms=0)
    app = create_app(Responder(batcher, temperature=1.0, max_new_tokens=4), api_key=API_KEY, model_id="slow",
                     **app_options)
    server = ServerThread(app).start()
    try:
        yield f"http://127.0.0.1:{server.port}/v1/chat/completions", backend
    finally:
        server.stop()
        batcher.close()


def ask(url: str, text: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(url, headers=AUTH, timeout=timeout, json={"messages": [{"role": "user", "content": text}]})


def test_a_full_server_refuses_with_503_and_retry_after(tiny_backend):
    with slow_server(tiny_backend, 0.8, max_pending=2) as (url, backend):
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda i: ask(url, f"day {i}"), range(6)))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "2" and busy.json()["error"]["code"] == "server_busy"
    assert len(backend.seen) == codes.count(200)


def test_a_slow_request_times_out_with_504(tiny_backend):
    with slow_server(tiny_backend, 1.5, request_timeout_s=0.5) as (url, _):
        r = ask(url, "hello")
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"


def test_a_request_whose_client_left_is_never_generated(tiny_backend):
    with slow_server(tiny_backend, 1.5) as (url, backend):
        first = threading.Thread(target=ask, args=(url, "first"))
        first.start()
        time.sleep(0.3)  # the first is decoding; the second waits in the queue
        with pytest.raises(httpx.ReadTimeout):
            ask(url, "second, gone", timeout=0.5)
        first.join()
        time.sleep(2.0)  # long enough for the worker to have taken the second, had it stayed queued
        assert backend.seen == ["first"]


def test_prompt_tokens_are_bounded(tiny_backend):
    from fastapi.testclient import TestClient

    app = create_app(Responder(tiny_backend, max_prompt_tokens=600, max_new_tokens=2), api_key=None)
    with TestClient(app, base_url="http://127.0.0.1") as http:
        long = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "word " * 2000}]})
        short = http.post("/v1/chat/completions", json={"messages": HELLO})
    error = long.json()["error"]
    assert long.status_code == 400 and error["code"] == "prompt_too_long" and "more than the 600" in error["message"]
    assert short.status_code == 200


def test_without_a_key_only_loopback_hosts_are_answered_and_health_has_no_path():
    from fastapi.testclient import TestClient

    class FolderPolicy(ScriptedPolicy):
        name = "/home/someone/runs/demo/policy"

    open_app = create_app(Responder(FolderPolicy()), api_key=None)
    with TestClient(open_app, base_url="http://127.0.0.1") as http:
        assert http.get("/health").json() == {"status": "ok", "model": "policy", "auth": False}
        for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
            assert http.post("/v1/chat/completions", json={"messages": HELLO}, headers={"Host": host}).status_code == 200
        for host in ("evil.example", "evil.example:8000", "192.168.1.5"):
            r = http.post("/v1/chat/completions", json={"messages": HELLO}, headers={"Host": host})
            assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"
        assert http.get("/health", headers={"Host": "rebound.example"}).status_code == 403
    keyed = create_app(Responder(FolderPolicy()), api_key=API_KEY)
    with TestClient(keyed, base_url="http://evil.example") as http:  # with a key, the key is the guard
        assert http.post("/v1/chat/completions", json={"messages": HELLO}, headers=AUTH).status_code == 200
