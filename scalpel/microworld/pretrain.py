"""Pretrain the micro-world base model: a tiny ``Olmo2ForCausalLM`` on the world corpus, deterministically.

A plain next-token loop (AdamW, warmup + cosine decay, grad clip 1.0) over packed rows: several documents share a
row, each attending only to itself, so almost no compute goes to padding. Chat documents are rendered with the world's
chat template (the model is an "instruct" model from the start, like OLMo-2-Instruct) and carry loss on every token
after the system turn; plain fact text carries loss on every token. Same seed, config and thread count give
bit-identical weights on the same torch build.
"""

from __future__ import annotations

import math
import random
import time

import torch
from tqdm.auto import tqdm
from transformers import Olmo2Config, Olmo2ForCausalLM, PreTrainedTokenizerFast

from scalpel.config import MicroworldConfig
from scalpel.data.prompts import messages
from scalpel.microworld.world import Doc


def encode_corpus(docs: list[Doc], tok: PreTrainedTokenizerFast, system_prompt: str,
                  max_len: int) -> tuple[list[list[int]], list[int], int]:
    """-> (token ids per doc, index of the first trained token per doc, docs dropped for length).

    Loss starts after the system turn: the questions (and few-shot turns) are language-model data too (it is how
    entity names and the question forms are learnt), only the fixed system prompt is not worth predicting.
    """
    prompts, fulls = [], []
    for d in docs:
        if d.is_chat:
            conv = messages(d.question, system_prompt if d.system else None, d.shots)
            prompts.append(tok.apply_chat_template(conv[:1], tokenize=False) if d.system else tok.bos_token)
            fulls.append(tok.apply_chat_template(conv + [{"role": "assistant", "content": d.answer}], tokenize=False))
        else:
            prompts.append(tok.bos_token)
            fulls.append(tok.bos_token + d.text + tok.eos_token)
    full_ids = tok(fulls, add_special_tokens=False)["input_ids"]
    prompt_ids = tok(prompts, add_special_tokens=False)["input_ids"]
    seqs, starts, dropped = [], [], 0
    for f, p in zip(full_ids, prompt_ids):
        if len(f) > max_len:
            dropped += 1
            continue
        if f[: len(p)] != p:  # the template guarantees this; a tokenizer change that breaks it must be loud
            raise RuntimeError("chat template prompt is not a token prefix of prompt + answer")
        seqs.append(f)
        starts.append(len(p))
    return seqs, starts, dropped


def packed_rows(lengths: list[int], row_length: int, rng: random.Random, open_rows: int = 8) -> list[list[int]]:
    """One epoch of documents packed into rows of ``row_length`` tokens: shuffle, then first-fit into a few open rows.

    Documents stay in random order (every batch mixes document kinds, which a tiny model needs: batches of one kind
    gave a lopsided gradient and a base that answered facts at chance), and a handful of open rows fill the gaps a
    plain concatenation would leave, so almost every position carries a token. Each document keeps its own
    positions and attention (``pack``), so packing changes which documents share a step, nothing else.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    rows: list[list[int]] = []
    filling: list[tuple[int, list[int]]] = []  # (tokens used, documents) of the open rows
    for i in order:
        for k, (used, docs) in enumerate(filling):
            if used + lengths[i] <= row_length:
                filling[k] = (used + lengths[i], docs + [i])
                break
        else:
            if len(filling) == open_rows:
                rows.append(filling.pop(0)[1])
            filling.append((lengths[i], [i]))
    rows += [docs for _, docs in filling]
    rng.shuffle(rows)
    return rows


def pack(rows: list[list[int]], seqs: list[list[int]], starts: list[int], row_length: int,
         pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (input_ids, labels, position_ids) of one batch of packed rows.

    Positions restart at 0 for every document: transformers reads a restart as a document boundary and attends
    within documents only (``masking_utils.find_packed_sequence_indices``; only without a KV cache), so a packed row trains exactly like its
    documents one by one. Each document's first token (BOS) carries no label, so nothing predicts across a boundary.
    """
    ids = torch.full((len(rows), row_length), pad, dtype=torch.long)
    labels = torch.full((len(rows), row_length), -100, dtype=torch.long)
    positions = torch.zeros((len(rows), row_length), dtype=torch.long)
    for r, docs in enumerate(rows):
        at = 0
        for i in docs:
            s = torch.tensor(seqs[i])
            n = len(s)
            ids[r, at : at + n] = s
            labels[r, at + starts[i] : at + n] = s[starts[i] :]
            positions[r, at : at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(row_length - at)  # the padding tail: one more segment, no labels
    return ids, labels, positions


def make_model(cfg: MicroworldConfig, tok: PreTrainedTokenizerFast) -> Olmo2ForCausalLM:
    m = cfg.model
    config = Olmo2Config(
        vocab_size=len(tok),
        hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size,
        num_hidden_layers=m.num_hidden_layers,
        num_attention_heads=m.num_attention_heads,
        num_key_value_heads=m.num_attention_heads,
        max_position_embeddings=m.max_position_embeddings,
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        rope_theta=10000.0,
    )
    torch.manual_seed(cfg.seed)
    model = Olmo2ForCausalLM(config)
    torch.nn.init.normal_(model.model.embed_tokens.weight, std=m.embedding_init_std)
    return model


def pretrain(cfg: MicroworldConfig, tok: PreTrainedTokenizerFast, docs: list[Doc], system_prompt: str,
             progress: bool = True) -> tuple[Olmo2ForCausalLM, dict]:
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    seqs, starts, dropped = encode_corpus(docs, tok, system_prompt, cfg.model.max_position_embeddings)
    model = make_model(cfg, tok)
    pt = cfg.pretrain
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": pt.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=pt.lr, betas=(0.9, 0.95))
    warmup = max(1, int(0.05 * pt.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, s / pt.steps)))))
    rng = random.Random(f"scalpel-microworld/{cfg.seed}/batches")
    lengths = [len(s) for s in seqs]
    row_length = max(pt.row_length, max(lengths, default=1))
    rows: list[list[int]] = []
    model.train()
    tokens, slots, losses, t0 = 0, 0, [], time.perf_counter()
    bar = tqdm(range(pt.steps), desc="pretrain base model", unit="step", disable=not progress, mininterval=1.0)
    for step in bar:
        if len(rows) < pt.batch_size:
            rows += packed_rows(lengths, row_length, rng)
        batch, rows = rows[: pt.batch_size], rows[pt.batch_size :]
        ids, labels, positions = pack(batch, seqs, starts, row_length, tok.pad_token_id)
        # no cache: with one, transformers skips the packed-sequence mask and documents would see each other
        loss = model(input_ids=ids, position_ids=positions, labels=labels, use_cache=False).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tokens += sum(lengths[i] for docs in batch for i in docs)
        slots += ids.numel()
        losses.append(loss.detach().item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}",
                            tok_s=f"{tokens / (time.perf_counter() - t0):.0f}")
    seconds = time.perf_counter() - t0
    model.eval()
    stats = {
        "documents": len(seqs), "documents_dropped_too_long": dropped, "steps": pt.steps,
        "tokens_seen": tokens, "padding_share": round(1 - tokens / max(1, slots), 4), "seconds": round(seconds, 2), "tokens_per_second": round(tokens / seconds, 1),
        "loss_first_10": round(sum(losses[:10]) / max(1, len(losses[:10])), 4),
        "loss_last_10": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return model, stats
