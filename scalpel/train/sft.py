"""An SFT arm on TRL's ``SFTTrainer``: the study's shared block -> ``SFTConfig`` (Figure 15 minus the GRPO block).

Rows: one per (question, step) of the stream, conversational prompt/completion
``{"prompt": [system, user], "completion": [assistant: target], "scalpel_row"}``, so TRL computes the loss on the
completion only and the chat template (which ends the assistant turn with EOS itself) renders both. No truncation
and no packing: an example longer than ``train.max_length`` is refused up front (``check_lengths``), because a
truncated or silently dropped example would break the matching of questions across arms.
"""

from __future__ import annotations

from datasets import Dataset
from trl import SFTConfig

from scalpel.config import ConfigError
from scalpel.data.prompts import messages
from scalpel.train.trainers import ScalpelSFTTrainer


def _conversation(run, q) -> tuple[list[dict], list[dict]]:
    return messages(q.question, run.system_prompt), [{"role": "assistant", "content": q.target}]


def rows(run) -> list[dict]:
    out = []
    for t in range(run.total_steps):
        for qid in run.expected_block(t):
            prompt, completion = _conversation(run, run.stream.by_id[qid])
            out.append({"prompt": prompt, "completion": completion, "scalpel_row": len(out)})
    return out


def check_lengths(run, tokenizer) -> int:
    """Longest prompt + target in tokens over the arm's questions; ConfigError naming the field if too long."""
    longest, worst = 0, None
    for qid in dict.fromkeys(run.expected_ids()):
        prompt, completion = _conversation(run, run.stream.by_id[qid])
        n = len(tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"])
        if n > longest:
            longest, worst = n, qid
    limit = run.study.train.max_length
    if longest > limit:
        raise ConfigError(f"study.train.max_length ({limit}): question {worst} has {longest} tokens of prompt + "
                          "SFT target; raise the limit or filter the data (examples are never truncated)")
    return longest


def config(run, common: dict) -> SFTConfig:
    return SFTConfig(**config_kwargs(run.study, common))


def config_kwargs(study, common: dict) -> dict:
    """What scalpel passes to ``SFTConfig`` (also printed by ``scalpel study --plan``)."""
    return dict(**common, max_length=None, packing=False, shuffle_dataset=False, completion_only_loss=True,
                dataset_num_proc=None)


def trainer(run, model, tokenizer, args: SFTConfig, callbacks: list) -> ScalpelSFTTrainer:
    check_lengths(run, tokenizer)
    data = rows(run)
    tr = ScalpelSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(data), processing_class=tokenizer,
                           callbacks=callbacks)
    if len(tr.train_dataset) != len(data):  # TRL must not have dropped anything
        raise RuntimeError(f"SFTTrainer kept {len(tr.train_dataset)} of {len(data)} rows; matching would break")
    return tr
