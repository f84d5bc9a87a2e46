from rlff_esc.llm.base import GenerationRequest

SYSTEM = {"role": "system", "content": "You are a caring listener."}


def _request(text, seed, **kw):
    return GenerationRequest([SYSTEM, {"role": "user", "content": text}], seed=seed, **kw)


def test_same_seed_same_text_and_batch_independent(smollm2_backend):
    reqs = [_request(f"I failed exam number {i} and feel awful.", seed=i, max_new_tokens=16, temperature=0.9)
            for i in range(4)]
    batched = smollm2_backend.generate(reqs)
    again = smollm2_backend.generate(reqs)
    alone = [smollm2_backend.generate([r])[0] for r in reqs]
    assert [g.text for g in batched] == [g.text for g in again]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert all(g.text and g.completion_tokens > 0 for g in batched)


def test_different_seeds_differ(smollm2_backend):
    outs = smollm2_backend.generate([_request("My dog died.", seed=s, max_new_tokens=16, temperature=1.0)
                                     for s in range(4)])
    assert len({g.text for g in outs}) > 1


def test_per_request_budget_and_stop(tiny_backend):
    reqs = [_request("hi", seed=0, max_new_tokens=3, temperature=1.0),
            _request("hi", seed=0, max_new_tokens=12, temperature=1.0)]
    short, long = tiny_backend.generate(reqs)
    assert short.completion_tokens <= 3 and short.finish_reason in ("length", "stop")
    assert long.completion_tokens <= 12
    greedy = tiny_backend.generate([_request("hi", seed=0, max_new_tokens=12)])[0].text
    if len(greedy) > 4:  # the tiny model answers garbage; cut it at a piece of its own greedy answer
        stop = greedy[2:4]
        cut = tiny_backend.generate([_request("hi", seed=0, max_new_tokens=12, stop=[stop])])[0]
        assert stop not in cut.text and cut.finish_reason == "stop"


def test_loglikelihood_prefers_fitting_reply(smollm2_backend):
    messages = [SYSTEM, {"role": "user", "content": "I lost my job and feel terrible."}]
    fitting, absurd = smollm2_backend.loglikelihood(
        [(messages, "I'm so sorry to hear that."), (messages, "Banana airplane purple.")])
    assert fitting > absurd


def test_shared_prompt_beginnings_change_no_result_and_save_work(smollm2_backend):
    from rlff_esc.llm.local import LocalBackend

    unshared = LocalBackend("unshared", model=smollm2_backend.model, tokenizer=smollm2_backend.tokenizer,
                            share_prefixes=False)
    history = [SYSTEM, {"role": "user", "content": "My sister stopped talking to me after our argument."},
               {"role": "assistant", "content": "That sounds painful. What was the argument about?"}]
    # two contexts × three candidates: each context's prompt repeats, and both share the history
    reqs = [GenerationRequest(history + [{"role": "user", "content": text}], max_new_tokens=10,
                              temperature=0.9, top_p=0.95, seed=k)
            for text in ("Money, mostly.", "She thinks I forgot her birthday.") for k in range(3)]
    options = [(history, answer) for answer in ("feels worse", "feels the same", "feels better", "issue solved")]
    results = {}
    for name, backend in (("shared", smollm2_backend), ("unshared", unshared)):
        computed = backend.stats["computed_tokens"]
        texts = [g.text for g in backend.generate(reqs)]
        scores = backend.loglikelihood(options)
        results[name] = (texts, scores, backend.stats["computed_tokens"] - computed)
    (texts, scores, work), (texts0, scores0, work0) = results["shared"], results["unshared"]
    assert texts == texts0
    assert max(abs(a - b) for a, b in zip(scores, scores0)) < 1e-3
    assert work < 0.6 * work0
