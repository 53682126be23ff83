"""What a micro-world holds and how good its base model is: sample items per task, greedy held-out accuracy.

Accuracy here is exact match on the extracted answer (``tasks.answer_is_correct``) with the world's system prompt,
greedy decoding: the quick health check of a world. The evaluation suite (``scalpel eval``) scores the same items
with sampling, confidence intervals and pass@k.
"""

from __future__ import annotations

import json

from scalpel.data.prompts import messages
from scalpel.evaluate.generate import generate
from scalpel.microworld.tasks import answer_is_correct

HELDOUT_TASKS = ["maths_easy", "maths_hard", "facts_mcq", "fewshot_maths", "instruct"]
# What an instruct-like base must score (greedy, held-out) for the paper's protocol to be measurable on it: off the
# floor and off the ceiling wherever a gain or a loss must be visible, and a strong grip on the facts SFT is predicted
# to overwrite. The demo world is built to meet them; ``accuracy_table`` marks any task outside its range.
INSTRUCT_LIKE = {"maths_easy": (0.30, 0.90), "maths_hard": (0.05, 1.0), "facts_mcq": (0.85, 1.0),
                 "fewshot_maths": (0.30, 0.90), "instruct": (0.30, 0.90)}
# The test-size world (2 blocks of width 64, 200 steps) only has to be off the floor on easy maths, so that GRPO in the
# tests gets some reward; the rest is plumbing.
TEST_SIZE_RANGES = {"maths_easy": (0.05, 0.90), "maths_hard": (0.0, 1.0), "facts_mcq": (0.0, 1.0),
                    "fewshot_maths": (0.0, 1.0), "instruct": (0.0, 1.0)}
# Room for the teacher's decomposed style too (57 tokens on easy maths), so a fine-tuned model is not cut off.
MAX_NEW_TOKENS = {"maths_easy": 96, "maths_hard": 128, "facts_mcq": 48, "fewshot_maths": 64, "instruct": 48}


def load_model(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    return model, tok


def evaluate_base(world, model=None, tokenizer=None, progress: bool = False, limit: int | None = None,
                  details: bool = False) -> dict:
    """Greedy accuracy per held-out task -> {task: {"accuracy", "correct", "n"}} (+ "per_item" with ``details``)."""
    if model is None:
        model, tokenizer = load_model(world.model_dir)
    results = {}
    for task in HELDOUT_TASKS:
        items = world.items(task, "heldout")[:limit]
        prompts = [tokenizer.apply_chat_template(messages(it["question"], world.system_prompt, it.get("shots") or ()),
                                                 tokenize=False, add_generation_prompt=True) for it in items]
        outs = generate(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS[task], stop=["</answer>"],
                        batch_size=256, progress=progress)
        per_item = [answer_is_correct(it, o.text) for it, o in zip(items, outs)]
        correct = sum(per_item)
        results[task] = {"accuracy": round(correct / len(items), 4), "correct": correct, "n": len(items)}
        if details:
            results[task]["per_item"] = per_item
    return results


def ranges_for(size: str) -> dict:
    """The accuracy ranges a base of this world size is built to meet."""
    return TEST_SIZE_RANGES if size == "test" else INSTRUCT_LIKE


def describe(world, samples: int = 2) -> dict:
    tasks = {}
    for task in HELDOUT_TASKS:
        items = world.items(task, "heldout")
        tasks[task] = {
            "heldout": len(items),
            "train": len(world.items(task, "train")),
            "tiers": sorted({it["tier"] for it in items}),
            "samples": [{k: it[k] for k in ("id", "tier", "question", "answer")} for it in items[:samples]],
        }
    return tasks


def report(world, as_json: bool = False, recompute: bool = False) -> str:
    acc = evaluate_base(world) if recompute or "eval" not in world.manifest else world.manifest["eval"]
    ranges = ranges_for(world.manifest["config"]["size"])
    info = {"dir": str(world.dir), "key": world.key, "size": world.manifest["config"]["size"],
            "seed": world.manifest["config"]["seed"], "system_prompt": world.system_prompt,
            "pretrain": world.manifest.get("pretrain", {}), "tasks": describe(world),
            "accuracy": {t: a["accuracy"] for t, a in acc.items()}, "accuracy_detail": acc,
            "instruct_like": {t: {"range": list(ranges[t]), "in_range": ranges[t][0] <= a["accuracy"] <= ranges[t][1]}
                              for t, a in acc.items() if t in ranges}}
    if as_json:
        return json.dumps(info, indent=2)
    lines = [f"micro-world {info['dir']}", f"  size {info['size']}, seed {info['seed']}, key {info['key'][:12]}",
             f"  base model: {info['pretrain'].get('parameters', '?')} parameters, "
             f"{info['pretrain'].get('tokens_seen', '?')} pretraining tokens", ""]
    for task, t in info["tasks"].items():
        lines.append(f"[{task}] {t['train']} train / {t['heldout']} held-out, tiers {', '.join(t['tiers'])}")
        for s in t["samples"]:
            q = s["question"].replace("\n", "\n      ")
            lines.append(f"  - {s['id']}: {q}\n    gold: {s['answer']!r}")
    return "\n".join(lines + ["", accuracy_table(acc, ranges)])


def accuracy_table(acc: dict, ranges: dict | None = None) -> str:
    """The base model's greedy held-out accuracy per task (``evaluate_base``'s result) as a small text table, with the
    instruct-like range each task should fall in and whether it does."""
    ranges = INSTRUCT_LIKE if ranges is None else ranges
    lines = ["base model, greedy, held-out:",
             f"  {'task':<16}{'accuracy':>10}{'correct':>10}{'n':>6}   instruct-like range"]
    for task, a in acc.items():
        lo, hi = ranges.get(task, (0.0, 1.0))
        mark = "ok" if lo <= a["accuracy"] <= hi else "OUT OF RANGE"
        lines.append(f"  {task:<16}{a['accuracy'] * 100:>9.1f}%{a['correct']:>10}{a['n']:>6}   "
                     f"[{lo * 100:.0f}, {hi * 100:.0f}] % {mark}")
    return "\n".join(lines)
