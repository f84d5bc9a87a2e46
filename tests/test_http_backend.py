"""The HTTP backend against real servers on 127.0.0.1 that serve models through the local backend."""

import pytest

from openai_test_server import ServerThread, free_port, make_app
from rlff_esc.errors import BackendError
from rlff_esc.llm.base import GenerationRequest
from rlff_esc.llm.http import HTTPBackend

SYSTEM = {"role": "system", "content": "You are a caring listener."}


def _requests(n, **kw):
    return [GenerationRequest([SYSTEM, {"role": "user", "content": f"Message {i}: I feel lonely."}],
                              max_new_tokens=8, seed=i, **kw) for i in range(n)]


@pytest.fixture()
def server(tiny_backend):
    s = ServerThread(make_app(tiny_backend)).start()
    yield s
    s.stop()


def test_generate_matches_local_backend(server, tiny_backend):
    http = HTTPBackend("tiny", base_urls=[server.url], max_concurrency=4)
    reqs = _requests(6)
    remote = http.generate(reqs)
    local = tiny_backend.generate(reqs)
    assert [g.text for g in remote] == [g.text for g in local]
    assert http.stats["requests"] == 6 and http.stats["completion_tokens"] > 0


def test_spreads_requests_over_replicas(tiny_backend):
    a, b = ServerThread(make_app(tiny_backend)).start(), ServerThread(make_app(tiny_backend)).start()
    try:
        HTTPBackend("tiny", base_urls=[a.url, b.url]).generate(_requests(8))
        calls = a.server.config.app.state.counters["chat_calls"], b.server.config.app.state.counters["chat_calls"]
        assert calls == (4, 4)
    finally:
        a.stop(), b.stop()


def test_retries_on_503_then_succeeds(tiny_backend):
    s = ServerThread(make_app(tiny_backend, fail_first=2)).start()
    try:
        http = HTTPBackend("tiny", base_urls=[s.url], max_retries=3, backoff_s=0.01, max_concurrency=1)
        out = http.generate(_requests(1))
        assert out[0].completion_tokens > 0 and http.stats["retries"] == 2
    finally:
        s.stop()


def test_unreachable_endpoint_names_url():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    http = HTTPBackend("m", base_urls=[url], max_retries=1, backoff_s=0.01, timeout_s=2)
    with pytest.raises(BackendError, match=r"127\.0\.0\.1:\d+/v1/chat/completions.*base_urls"):
        http.generate(_requests(1))


def test_loglikelihood_matches_local_backend(server, tiny_backend, tiny_lm_dir):
    http = HTTPBackend("tiny", base_urls=[server.url], tokenizer=str(tiny_lm_dir))
    pairs = [([SYSTEM, {"role": "user", "content": "I lost my job."}], "I'm so sorry."),
             ([SYSTEM, {"role": "user", "content": "I lost my job."}], "Purple banana.")]
    assert http.loglikelihood(pairs) == pytest.approx(tiny_backend.loglikelihood(pairs), abs=1e-3)


def test_missing_base_urls_is_a_clear_error():
    with pytest.raises(BackendError, match="base_urls"):
        HTTPBackend("m", base_urls=[])


def test_logprob_critic_falls_back_to_sampling_without_prompt_logprobs(tiny_backend, tiny_lm_dir):
    from rlff_esc.agents.base import Dialogue
    from rlff_esc.agents.critic import LLMCritic
    from rlff_esc.data.schema import Profile, Turn

    s = ServerThread(make_app(tiny_backend, completions=False)).start()
    try:
        http = HTTPBackend("tiny", base_urls=[s.url], tokenizer=str(tiny_lm_dir), max_retries=0)
        critic = LLMCritic(http, scoring="logprob", samples=3)  # the probe meets a 404: sampling from the start
        assert critic.scoring == "sample" and critic.name.startswith("llm-sample")
        dialogue = Dialogue(Profile(emotion_type="sadness", problem_type="job crisis", situation="I lost my job."),
                            [Turn(speaker="seeker", text="I lost my job."), Turn(speaker="supporter", text="I'm sorry.")])
        judgement = critic.judge([dialogue])[0]
        assert critic.scoring == "sample" and critic.name.startswith("llm-sample")
        assert len(judgement.raw) == 3 and 0 <= judgement.invalid <= 3
        assert (judgement.score is None) == (judgement.invalid == 3)
    finally:
        s.stop()


def test_logprob_critic_fails_loudly_on_other_errors(tiny_backend, tiny_lm_dir, monkeypatch):
    """A server that stays down or refuses the key is an error, not a reason to judge by sampling."""
    from rlff_esc.agents.critic import LLMCritic

    monkeypatch.setenv("TEST_KEY", "wrong")
    for app, backoff, expected in ((make_app(tiny_backend, fail_first=100), 0.01, "after 2 tries.*HTTP 503"),
                                   (make_app(tiny_backend, api_key="right"), 0.01, "HTTP 401")):
        s = ServerThread(app).start()
        try:
            http = HTTPBackend("tiny", base_urls=[s.url], tokenizer=str(tiny_lm_dir), max_retries=1,
                               backoff_s=backoff, api_key_env="TEST_KEY")
            with pytest.raises(BackendError, match=expected):
                LLMCritic(http, scoring="logprob")
        finally:
            s.stop()
