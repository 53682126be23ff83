"""Batched generation is the same computation as one prompt at a time (left padding + attention mask + KV cache),
accepts rendered text or token ids, cuts at stop strings, and flags prompts that do not fit the context."""

from __future__ import annotations

from scalpel.data.prompts import messages
from scalpel.evaluate.generate import context_length, generate


def prompts_for(test_world, tok, n=6):
    items = test_world.items("maths_easy", "heldout")[:3] + test_world.items("facts_mcq", "heldout")[:n - 3]
    return [tok.apply_chat_template(messages(it["question"], test_world.system_prompt), tokenize=False,
                                    add_generation_prompt=True) for it in items]


def test_batched_greedy_equals_one_at_a_time(mw_model, test_world):
    model, tok = mw_model
    prompts = prompts_for(test_world, tok)
    assert len({len(tok(p)["input_ids"]) for p in prompts}) > 1  # different lengths: padding is exercised
    batched = generate(model, tok, prompts, max_new_tokens=16, batch_size=6)
    single = [generate(model, tok, [p], max_new_tokens=16, batch_size=1)[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.num_tokens for c in batched] == [c.num_tokens for c in single]


def test_token_id_prompts_equal_text_prompts_and_sampling_is_seeded(mw_model, test_world):
    model, tok = mw_model
    prompts = prompts_for(test_world, tok, 4)
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    a = generate(model, tok, prompts, max_new_tokens=12, temperature=0.7, top_p=0.95, seed=3)
    b = generate(model, tok, ids, max_new_tokens=12, temperature=0.7, top_p=0.95, seed=3)
    assert [c.text for c in a] == [c.text for c in b]


def test_stop_string_is_kept_and_ends_the_completion(mw_model, test_world):
    model, tok = mw_model
    prompts = prompts_for(test_world, tok, 4)
    outs = generate(model, tok, prompts, max_new_tokens=40, stop=["\n"])
    free = generate(model, tok, prompts, max_new_tokens=40)  # the same greedy completions without a stop string
    hit = 0
    for c, f in zip(outs, free):
        if "\n" in f.text:  # cut right after the first stop string, which is kept
            hit += 1
            assert c.text == f.text[:f.text.index("\n") + 1]
        else:
            assert c.text == f.text
    assert hit >= 1, [f.text for f in free]  # the stop string was reached, so the cut was tested


def test_prompt_longer_than_the_context_is_flagged_not_run(mw_model, test_world):
    model, tok = mw_model
    ctx = context_length(model)
    long = list(tok("word " * (ctx + 10), add_special_tokens=False)["input_ids"])[: ctx + 5]
    short = prompts_for(test_world, tok, 4)[0]
    out = generate(model, tok, [long, tok(short, add_special_tokens=False)["input_ids"]], max_new_tokens=8)
    assert out[0].prompt_too_long and out[0].truncated and out[0].text == ""
    assert not out[1].prompt_too_long
