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


def test_per_request_budget(tiny_backend):
    reqs = [_request("hi", seed=0, max_new_tokens=3, temperature=1.0),
            _request("hi", seed=0, max_new_tokens=12, temperature=1.0)]
    short, long = tiny_backend.generate(reqs)
    assert short.completion_tokens <= 3 and short.finish_reason in ("length", "stop")
    assert long.completion_tokens <= 12


def test_rows_finishing_one_by_one_give_what_each_gives_alone(smollm2_backend):
    """Budgets of 1 to 8 tokens: rows finish at different steps, and finished rows wait in the batch
    until a quarter of it has finished; every row still gets exactly what it gets alone."""
    reqs = [_request(f"My week was hard, day {i}.", seed=i, max_new_tokens=i + 1, temperature=0.9) for i in range(8)]
    batched = smollm2_backend.generate(reqs)
    alone = [smollm2_backend.generate([r])[0] for r in reqs]
    assert [(g.text, g.token_ids, g.finish_reason) for g in batched] == \
        [(g.text, g.token_ids, g.finish_reason) for g in alone]
    assert [g.completion_tokens for g in batched] == [i + 1 for i in range(8)]


def test_stop_strings_stop_generation(smollm2_backend):
    """A stop string taken from the middle of the model's own greedy answer must end that answer early,
    in the same batch as a request without stop strings, which goes on."""
    prompt = "Count from one to twenty in words, separated by commas."
    full = smollm2_backend.generate([_request(prompt, seed=0, max_new_tokens=40)])[0]
    words = full.text.split()
    assert len(words) >= 6, full.text  # greedy SmolLM2 counts; the stop string below is surely emitted
    stop = words[len(words) // 2]
    before = full.text[: full.text.index(stop)]
    cut, again = smollm2_backend.generate([_request(prompt, seed=0, max_new_tokens=40, stop=[stop]),
                                           _request(prompt, seed=0, max_new_tokens=40)])
    assert cut.finish_reason == "stop" and stop not in cut.text
    assert cut.text == before.strip()
    assert cut.completion_tokens < full.completion_tokens
    assert again.text == full.text


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


def test_grouped_head_attention_matches_transformers_sdpa(tiny_lm_dir):
    """On CPU the backend's models run ``sdpa_gqa`` (grouped key/value heads not copied per query head);
    it must give sdpa's logits, for a padded batch and for a lone unmasked row."""
    import torch

    from rlff_esc.llm.local import load_causal_lm

    model, tokenizer = load_causal_lm(str(tiny_lm_dir), device="cpu")
    assert model.config._attn_implementation == "sdpa_gqa"
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    padded = tokenizer(["I lost my job today and I feel lost.", "Hi"], return_tensors="pt", padding=True)
    single = tokenizer(["I lost my job today and I feel lost."], return_tensors="pt")
    with torch.no_grad():
        ours = [model(**batch).logits for batch in (padded, single)]
        model.set_attn_implementation("sdpa")
        theirs = [model(**batch).logits for batch in (padded, single)]
    real = padded["attention_mask"].bool()
    assert torch.allclose(ours[0][real], theirs[0][real], atol=1e-5)
    assert torch.allclose(ours[1], theirs[1], atol=1e-5)


def test_rows_of_very_different_lengths_give_what_each_gives_alone(smollm2_backend):
    """Rows far apart in length run as separate forward passes (``length_groups``) whose caches are
    joined for decoding; no result may depend on it."""
    from rlff_esc.llm.local import GROUP_COST_TOKENS
    from rlff_esc.llm.prefix import length_groups

    long_story = " ".join(["My partner and I have argued every night this month about money and chores."] * 6)
    prompts = [[SYSTEM, {"role": "user", "content": text}] for text in ("Hi.", long_story, "I feel sad.")]
    lengths = [len(smollm2_backend._encode([smollm2_backend.render(p)])[0]) for p in prompts]
    assert len(length_groups(lengths, GROUP_COST_TOKENS)) > 1  # the case under test: several groups
    reqs = [GenerationRequest(p, max_new_tokens=8, temperature=0.9, seed=3) for p in prompts]
    assert [g.text for g in smollm2_backend.generate(reqs)] == [smollm2_backend.generate([r])[0].text for r in reqs]
    pairs = [(p, answer) for p in prompts for answer in ("Ok.", "That sounds really hard, I am here for you.")]
    together = smollm2_backend.loglikelihood(pairs)
    alone = [smollm2_backend.loglikelihood([pair])[0] for pair in pairs]
    assert max(abs(a - b) for a, b in zip(together, alone)) < 1e-3


def test_growing_cache_holds_what_a_dynamic_cache_holds_and_writes_in_place():
    import torch
    from transformers import DynamicCache

    from rlff_esc.llm.cache import GrowingCache

    torch.manual_seed(0)
    growing, dynamic = GrowingCache(reserve=4), DynamicCache()
    steps = [torch.randn(3, 2, 5, 8)] + [torch.randn(3, 2, 1, 8) for _ in range(4)]
    buffers = set()
    for states in steps:
        for layer in (0, 1):
            keys, values = growing.update(states, -states, layer)
            dynamic.update(states, -states, layer)
            assert torch.equal(keys, dynamic.layers[layer].keys) and torch.equal(values, -keys)
        buffers.add(growing.layers[0].keys.data_ptr())
    assert len(buffers) == 1  # the prompt and four decoded positions: one buffer, never copied
    rows = torch.tensor([2, 0])
    growing.batch_select_indices(rows)
    dynamic.batch_select_indices(rows)
    for states in (torch.randn(2, 2, 1, 8), torch.randn(2, 2, 3, 8)):  # past the room: a bigger buffer
        for layer in (0, 1):
            keys, _ = growing.update(states, -states, layer)
            dynamic.update(states, -states, layer)
            assert torch.equal(keys, dynamic.layers[layer].keys)
    assert growing.get_seq_length() == 5 + 4 + 1 + 3


def test_kept_caches_continue_conversations_with_the_same_texts_and_less_work(smollm2_backend):
    """Three conversations, each next prompt repeating the last one with the model's reply and a new
    user turn: starting from the kept caches changes no text and computes far fewer tokens, and each
    conversation's newest sequence replaces the one it continued (one kept per conversation)."""
    from rlff_esc.llm.local import LocalBackend

    keeping = LocalBackend("keeping", model=smollm2_backend.model, tokenizer=smollm2_backend.tokenizer,
                           keep_tokens=4096)
    openings = ["I failed my driving test again.", "My cat has been sick all week.", "I can't sleep before exams."]
    results = {}
    for name, backend in (("plain", smollm2_backend), ("keeping", keeping)):
        conversations = [[SYSTEM, {"role": "user", "content": text}] for text in openings]
        computed, texts = backend.stats["computed_tokens"], []
        for turn in range(3):
            out = backend.generate([GenerationRequest(c, max_new_tokens=12, temperature=0.9, seed=turn * 10 + i)
                                    for i, c in enumerate(conversations)])
            texts.append([g.text for g in out])
            for c, g in zip(conversations, out):
                c += [{"role": "assistant", "content": g.text}, {"role": "user", "content": f"Yes. And turn {turn}."}]
        results[name] = (texts, backend.stats["computed_tokens"] - computed)
    assert results["keeping"][0] == results["plain"][0]
    assert keeping.stats["reused_tokens"] > 0
    assert results["keeping"][1] < 0.7 * results["plain"][1]
    assert len(keeping.kept) == len(openings)



def test_auto_precision_is_bfloat16_only_where_the_hardware_multiplies_it(tiny_lm_dir, monkeypatch):
    """``dtype: auto`` loads bfloat16 on a CPU with AMX and float32 on one without; either way it generates."""
    import torch

    from rlff_esc.llm import precision
    from rlff_esc.llm.local import LocalBackend

    for amx, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda amx=amx: {"amx_bf16": amx})
        assert precision.inference_dtype("auto", "cpu") is expected
        backend = LocalBackend(str(tiny_lm_dir), batch_size=4, device="cpu")
        assert backend.model.dtype is expected
        out = backend.generate([GenerationRequest([SYSTEM, {"role": "user", "content": "I feel sad."}],
                                                  max_new_tokens=5, temperature=0.8, seed=1)])
        assert out[0].completion_tokens > 0 and out[0].token_ids
    assert precision.inference_dtype("float32", "cpu") is torch.float32
