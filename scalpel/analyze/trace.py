"""Causal tracing after Meng et al. 2022 (ROME): where does the model recall a fact? (paper Appendix D, Fig. 12)

Method, as in ROME: for each fact (prompt, subject, answer) the model gets right, run (1) the clean prompt and
record every layer's residual output ("hidden"), MLP output and attention output at every token; (2) corrupted
runs with Gaussian noise of ``noise`` × σ added to the subject tokens' embeddings (σ = std of the subject-token
embeddings over the facts; ``noise`` = 3; seeded, ``samples`` draws, the same draws for every restoration of a
fact); (3) the corrupted runs again, restoring one clean state at one (layer, token): the residual state, or the
MLP / attention outputs of a window of ``window`` layers centred on it. The indirect effect is
p_restored(answer) − p_corrupted(answer), averaged over noise draws and facts (AIE), per layer and token position.
The answer probability is that of the answer's first token after the prompt (ROME's convention). Token positions
are grouped as ROME does: first / middle / last subject token, first subsequent token, further tokens, last token.

Deviations: facts count as known when greedy decoding reproduces every answer token (ROME compares the predicted
continuation); the default MLP/attention window is ROME's 10 for models of ≥ 20 layers (the paper's setting for
OLMo-2-7B) but max(1, layers // 4) below that, so tiny models are not restored whole; prompts start with the
tokenizer's BOS token when it has one (the micro-world pretrains fact text that way); all restorations of a fact
are batched (rows = restorations × noise draws).

Freezing selector (``select_layers``), the paper's rule (App. D): OLMo-2-7B shows ROME's "early site" (MLPs at the
last subject token) and a "late site" (upper-layer MLPs at the last token); "due to the apparent relative strength
of the 'late site', we choose to freeze MLPs in all layers where AIE is greater than 0.1, namely layers 20-26". So
the layers whose MLP AIE *at the last token* exceeds ``threshold`` = 0.1 (absolute, in probability) are written as a
freezing selector, e.g. ``mlp@20-26``; a study's ``mlp@traced`` arm freezes exactly these.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from scalpel import atomic
from scalpel.analyze import plots
from scalpel.analyze.architectures import Architecture, for_model, selector
from scalpel.errors import UserError
from scalpel.data import rows as rows_mod
from scalpel.hub import local_model
from scalpel.integrity import verify

log = logging.getLogger(__name__)

KINDS = ("hidden", "mlp", "attn")
CATEGORIES = ("first subject token", "middle subject tokens", "last subject token", "first subsequent token",
              "further tokens", "last token")


@dataclass(frozen=True)
class Fact:
    prompt: str
    subject: str
    target: str  # the answer continuation, with its leading space (" Tarsa")
    id: str = ""


def load_facts(path: str | Path) -> list[Fact]:
    """Facts from a micro-world (``tasks/facts.jsonl`` or the world dir) or a ROME ``known_1000.json``
    (fields prompt, subject, attribute; the target is " " + attribute)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tasks" / "facts.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"facts file {path} does not exist; pass a micro-world's tasks/facts.jsonl or a "
                                f"ROME-format known_1000.json")
    text = path.read_text(errors="replace")
    try:
        rows = json.loads(text) if path.suffix == ".json" else \
            [rows_mod.parse_json_line(x, n) for n, x in enumerate(text.splitlines(), 1) if x.strip()]
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a list of facts (prompt, subject, target or attribute)")

    def make(i: int, r: dict) -> Fact:
        target = r["target"] if "target" in r else " " + rows_mod.text(r["attribute"], "attribute").strip()
        prompt, subject = rows_mod.text(r["prompt"], "prompt"), rows_mod.text(r["subject"], "subject")
        if subject not in prompt:
            raise rows_mod.Reject("subject not in prompt")
        return Fact(prompt, subject, rows_mod.text(target, "target"), str(r.get("id", r.get("known_id", i))))

    facts, rejected = rows_mod.convert(rows, make, key=lambda f: f.id)
    if rejected:
        log.warning("%s: rejected %d malformed fact(s): %s", path, sum(rejected.values()), rejected)
    if not facts:
        raise UserError(f"{path}: no usable facts (need prompt, subject and target or attribute; {rejected})")
    return facts


# ------------------------------------------------------------------------------------------- encoding


@dataclass
class Encoded:
    fact: Fact
    ids: list[int]  # prompt tokens
    subject: tuple[int, int]  # token range [start, end) of the subject in ids
    answer: list[int]  # answer tokens after the prompt


def encode(tok, fact: Fact, bos: bool = True) -> Encoded | None:
    """Token ids, subject token span and answer tokens of a fact (None when the subject is not in the prompt)."""
    prefix = tok.bos_token if (bos and tok.bos_token) else ""
    enc = tok(prefix + fact.prompt, add_special_tokens=False, return_offsets_mapping=True)
    full = tok(prefix + fact.prompt + fact.target, add_special_tokens=False)["input_ids"]
    ids = enc["input_ids"]
    c0 = fact.prompt.find(fact.subject)
    if c0 < 0 or full[:len(ids)] != ids or len(full) == len(ids):
        return None
    c0, c1 = c0 + len(prefix), c0 + len(prefix) + len(fact.subject)
    span = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < c1 and b > c0 and b > a]
    if not span:
        return None
    return Encoded(fact, ids, (span[0], span[-1] + 1), full[len(ids):])


def token_categories(n_tokens: int, subject: tuple[int, int]) -> dict[str, list[int]]:
    """ROME's six position groups (a group may be empty, e.g. no middle tokens in a 2-token subject)."""
    s0, s1 = subject
    return {
        "first subject token": [s0],
        "middle subject tokens": list(range(s0 + 1, s1 - 1)),
        "last subject token": [s1 - 1],
        "first subsequent token": [s1] if s1 < n_tokens - 1 else [],
        "further tokens": list(range(s1 + 1, n_tokens - 1)),
        "last token": [n_tokens - 1],
    }


# ------------------------------------------------------------------------------------------- the tracer


def default_window(n_layers: int) -> int:
    """ROME's window of 10 layers for real models; a quarter of the layers for tiny ones."""
    return 10 if n_layers >= 20 else max(1, n_layers // 4)



class Tracer:
    """Clean and corrupted runs of one model with restorations, via forward hooks on modules found by name.

    Batch convention: each corrupted forward has rows = restoration groups × ``samples`` noise draws; draw ``s``
    of every group gets the same noise, so groups differ only in what they restore.
    """

    def __init__(self, model, tok, *, noise: float = 3.0, samples: int = 10, window: int | None = None,
                 seed: int = 0, max_rows: int = 512, arch: Architecture | None = None):
        self.model, self.tok = model.eval(), tok
        self.arch = arch or for_model(model)
        self.n_layers = int(model.config.num_hidden_layers)
        self.samples, self.seed, self.max_rows, self.noise = samples, seed, max_rows, noise
        self.window = window if window is not None else default_window(self.n_layers)
        self.embed = model.get_submodule(self.arch.embed_module)
        self.modules = {
            (kind, layer): model.get_submodule(tmp.format(layer))
            for kind, tmp in (("hidden", self.arch.layer_module_tmp), ("mlp", self.arch.mlp_module_tmp),
                              ("attn", self.arch.attn_module_tmp))
            for layer in range(self.n_layers)
        }
        self.sigma: float | None = None

    @torch.inference_mode()
    def embedding_std(self, encoded: Iterable[Encoded]) -> float:
        """σ of the subject-token embeddings over the facts (ROME's ``collect_embedding_std``)."""
        rows = [self.embed.weight[e.ids[e.subject[0]:e.subject[1]]] for e in encoded]
        return float(torch.cat(rows).float().std())

    # -- runs

    @torch.inference_mode()
    def clean(self, ids: list[int]) -> tuple[torch.Tensor, dict[tuple[str, int], torch.Tensor]]:
        """Next-token probabilities at the last position and every recorded state, ``{(kind, layer): (T, H)}``."""
        states: dict[tuple[str, int], torch.Tensor] = {}
        handles = [m.register_forward_hook(self._recorder(key, states)) for key, m in self.modules.items()]
        try:
            logits = self.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        finally:
            for h in handles:
                h.remove()
        return torch.softmax(logits.float(), -1), states

    def noise_for(self, index: int, n_subject: int, hidden: int) -> torch.Tensor:
        """The fact's noise draws, ``(samples, n_subject, hidden)``, from a generator seeded per fact."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return torch.randn(self.samples, n_subject, hidden, generator=gen) * (self.noise * self.sigma)

    @torch.inference_mode()
    def corrupted(self, ids: list[int], subject: tuple[int, int], noise: torch.Tensor, answer: int,
                  states: dict[tuple[str, int], torch.Tensor],
                  groups: list[list[tuple[str, int, int]]]) -> np.ndarray:
        """p(answer) at the last token, averaged over noise draws, for each restoration group: a group is a list
        of (kind, layer, token) states to restore from the clean run (empty list = plain corrupted run)."""
        S = self.samples
        per = max(1, self.max_rows // S)
        out = []
        for g0 in range(0, len(groups), per):
            chunk = groups[g0:g0 + per]
            rows = len(chunk) * S
            masks: dict[tuple[str, int], torch.Tensor] = {}
            for gi, group in enumerate(chunk):
                for kind, layer, token in group:
                    m = masks.setdefault((kind, layer), torch.zeros(rows, len(ids), 1, dtype=torch.bool))
                    m[gi * S:(gi + 1) * S, token] = True
            handles = [self.embed.register_forward_hook(self._noiser(subject, noise.repeat(len(chunk), 1, 1)))]
            handles += [self.modules[key].register_forward_hook(self._patcher(states[key], m))
                        for key, m in masks.items()]
            try:
                logits = self.model(input_ids=torch.tensor([ids] * rows), use_cache=False).logits[:, -1]
            finally:
                for h in handles:
                    h.remove()
            p = torch.softmax(logits.float(), -1)[:, answer].view(len(chunk), S).mean(1)
            out.append(p.double().numpy())
        return np.concatenate(out)

    def restoration_groups(self, n_tokens: int) -> list[list[tuple[str, int, int]]]:
        """[plain corrupted] + for each kind, layer, token: the states restored (a window for mlp/attn)."""
        groups: list[list[tuple[str, int, int]]] = [[]]
        for kind in KINDS:
            for layer in range(self.n_layers):
                if kind == "hidden":
                    layers = [layer]
                else:
                    lo = max(0, layer - self.window // 2)
                    layers = list(range(lo, min(self.n_layers, layer - (-self.window // 2))))
                for t in range(n_tokens):
                    groups.append([(kind, la, t) for la in layers])
        return groups

    # -- hooks

    @staticmethod
    def _recorder(key, states):
        def hook(module, inputs, output):
            h = output[0] if isinstance(output, tuple) else output
            states[key] = h[0].detach().clone()

        return hook

    @staticmethod
    def _noiser(subject, noise):
        s0, s1 = subject

        def hook(module, inputs, output):
            output = output.clone()
            output[:, s0:s1] += noise.to(output.dtype)
            return output

        return hook

    @staticmethod
    def _patcher(clean, mask):
        def hook(module, inputs, output):
            if isinstance(output, tuple):
                return (torch.where(mask, clean.to(output[0].dtype), output[0]),) + tuple(output[1:])
            return torch.where(mask, clean.to(output.dtype), output)

        return hook


# ------------------------------------------------------------------------------------------- driver


@torch.inference_mode()
def known_facts(model, encoded: list[Encoded]) -> list[bool]:
    """Which facts the model answers correctly: greedy (teacher-forced argmax) reproduces every answer token."""
    ok = []
    for e in encoded:
        seq = torch.tensor([e.ids + e.answer])
        pred = model(input_ids=seq, use_cache=False).logits[0, len(e.ids) - 1:-1].argmax(-1)
        ok.append(pred.tolist() == e.answer)
    return ok


def trace_fact(tracer: Tracer, e: Encoded, index: int) -> dict:
    """One fact's restoration grids ``{kind: (tokens, layers)}`` of p(answer), plus clean/corrupted p."""
    probs, states = tracer.clean(e.ids)
    answer = e.answer[0]
    n_subj = e.subject[1] - e.subject[0]
    hidden = states[("hidden", 0)].shape[-1]
    noise = tracer.noise_for(index, n_subj, hidden)
    groups = tracer.restoration_groups(len(e.ids))
    p = tracer.corrupted(e.ids, e.subject, noise, answer, states, groups)
    T, L = len(e.ids), tracer.n_layers
    grids = {kind: p[1 + k * L * T:1 + (k + 1) * L * T].reshape(L, T).T for k, kind in enumerate(KINDS)}
    return {"p_clean": float(probs[answer]), "p_corrupted": float(p[0]), "grids": grids}


def select_layers(mlp_aie: dict[str, list[float] | None], threshold: float = 0.1, *,
                  relative: bool = False) -> dict:
    """The freezing selection from the MLP AIE profiles (``{position group: per-layer AIE}``): the layers whose AIE
    at the last token exceeds ``threshold`` (the paper's rule, module doc), or ``threshold`` x the profile's maximum
    when ``relative``. Returns the record written to ``selector.json``; ``layers`` may be empty."""
    profile = np.asarray(mlp_aie["last token"], dtype=float)
    cut = threshold * float(profile.max()) if relative else threshold
    layers = [int(i) for i in np.flatnonzero(profile > cut)]
    rule = f"{threshold:g} x the largest" if relative else f"{threshold:g}"
    return {"freeze": selector("mlp", layers), "layers": layers, "threshold": threshold, "relative": relative,
            "cutoff": cut, "criterion": f"MLP AIE at the last token > {rule} (the paper: > 0.1, layers 20-26 of "
            f"OLMo-2-7B)", "mlp_aie_last_token": mlp_aie["last token"],
            "mlp_aie_last_subject_token": mlp_aie["last subject token"]}


def causal_trace(model_dir: str | Path, facts: str | Path | list[Fact], out_dir: str | Path, *,
                 noise: float = 3.0, samples: int = 10, window: int | None = None, seed: int = 0,
                 max_facts: int | None = None, threshold: float = 0.1, relative: bool = False, bos: bool = True,
                 threads: int | None = None, max_rows: int = 512, figures: bool = True,
                 progress: bool = True) -> Path:
    """Trace the known facts; write ``trace.json`` (AIE per kind × position group × layer, settings, selector;
    returned), ``selector.json`` and ``figures/trace.png``."""
    from transformers import AutoTokenizer

    from scalpel.analyze.kl import load_model

    if threads:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    fact_list = facts if isinstance(facts, list) else load_facts(facts)
    model_dir = local_model(model_dir)  # a hub id: its cached snapshot
    verify(model_dir)
    model = load_model(model_dir)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    encoded = [e for e in (encode(tok, f, bos) for f in fact_list) if e is not None]
    if not encoded:
        raise UserError(f"none of the {len(fact_list)} facts could be tokenised with its subject inside the prompt")
    known = [e for e, ok in zip(encoded, known_facts(model, encoded)) if ok]
    if not known:
        raise UserError(f"{model_dir} answers none of the {len(encoded)} facts correctly: nothing to trace")
    known = known[:max_facts] if max_facts else known
    tracer = Tracer(model, tok, noise=noise, samples=samples, window=window, seed=seed, max_rows=max_rows)
    tracer.sigma = tracer.embedding_std(known)
    sums = {k: {c: np.zeros(tracer.n_layers) for c in CATEGORIES} for k in KINDS}
    counts = {c: 0 for c in CATEGORIES}
    per_fact = []
    for i, e in enumerate(tqdm(known, desc="trace", unit="fact", disable=not progress)):
        r = trace_fact(tracer, e, i)
        cats = token_categories(len(e.ids), e.subject)
        for c, toks in cats.items():
            if not toks:
                continue
            counts[c] += 1
            for k in KINDS:
                sums[k][c] += (r["grids"][k][toks] - r["p_corrupted"]).mean(0)
        per_fact.append({"id": e.fact.id, "prompt": e.fact.prompt, "subject": e.fact.subject,
                         "target": e.fact.target, "p_clean": r["p_clean"], "p_corrupted": r["p_corrupted"]})
    aie = {k: {c: (sums[k][c] / counts[c]).tolist() if counts[c] else None for c in CATEGORIES} for k in KINDS}
    sel = select_layers(aie["mlp"], threshold, relative=relative)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": str(model_dir), "facts": str(facts) if not isinstance(facts, list) else "(list)",
        "n_facts": len(fact_list), "n_encoded": len(encoded), "n_known": len(known),
        "settings": {"noise": noise, "sigma": tracer.sigma, "samples": samples, "window": tracer.window,
                     "seed": seed, "bos": bos},
        "p_clean_mean": float(np.mean([f["p_clean"] for f in per_fact])),
        "p_corrupted_mean": float(np.mean([f["p_corrupted"] for f in per_fact])),
        "aie": aie, "category_counts": counts, "selector": sel, "per_fact": per_fact,
    }
    if figures:
        rows = [c for c in CATEGORIES if counts[c]]
        grid = {k: np.array([aie[k][c] for c in rows]) for k in KINDS}
        profiles = {k: {"last subject token": aie[k]["last subject token"], "last token": aie[k]["last token"]}
                    for k in KINDS}
        fig = plots.trace_figure(grid, rows, f"causal tracing, {len(known)} known facts, noise {noise}σ, "
                                 f"window {tracer.window}", profiles)
        summary["figures"] = [str(plots.save_png(fig, out_dir / "figures" / "trace.png").relative_to(out_dir))]
    atomic.write_json(out_dir / "selector.json", sel)
    return atomic.write_text(out_dir / "trace.json", json.dumps(summary, indent=1, default=_jsonable))


def _jsonable(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    raise TypeError(type(x))
