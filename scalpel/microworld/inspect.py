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
MAX_NEW_TOKENS = {"maths_easy": 48, "maths_hard": 64, "facts_mcq": 40, "fewshot_maths": 40, "instruct": 40}


def load_model(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    return model, tok


def evaluate_base(world, model=None, tokenizer=None, progress: bool = False, limit: int | None = None) -> dict:
    """Greedy accuracy per held-out task -> {task: {"accuracy", "correct", "n"}}."""
    if model is None:
        model, tokenizer = load_model(world.model_dir)
    results = {}
    for task in HELDOUT_TASKS:
        items = world.items(task, "heldout")[:limit]
        prompts = [tokenizer.apply_chat_template(messages(it["question"], world.system_prompt), tokenize=False,
                                                 add_generation_prompt=True) for it in items]
        outs = generate(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS[task], stop=["</answer>"],
                        batch_size=64, progress=progress)
        correct = sum(answer_is_correct(it, o.text) for it, o in zip(items, outs))
        results[task] = {"accuracy": round(correct / len(items), 4), "correct": correct, "n": len(items)}
    return results


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
    info = {"dir": str(world.dir), "key": world.key, "size": world.manifest["config"]["size"],
            "seed": world.manifest["config"]["seed"], "system_prompt": world.system_prompt,
            "pretrain": world.manifest.get("pretrain", {}), "tasks": describe(world),
            "accuracy": {t: a["accuracy"] for t, a in acc.items()}, "accuracy_detail": acc}
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
    return "\n".join(lines + ["", accuracy_table(acc)])


def accuracy_table(acc: dict) -> str:
    """The base model's greedy held-out accuracy per task (``evaluate_base``'s result) as a small text table."""
    lines = ["base model, greedy, held-out:", f"  {'task':<16}{'accuracy':>10}{'correct':>10}{'n':>6}"]
    for task, a in acc.items():
        lines.append(f"  {task:<16}{a['accuracy'] * 100:>9.1f}%{a['correct']:>10}{a['n']:>6}")
    return "\n".join(lines)
