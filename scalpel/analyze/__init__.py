"""Checkpoint analyses (paper §4 and Appendix D): weight-update maps (``weights``), KL to base (``kl``) and causal
tracing (``trace``). Each entry point takes paths, writes tables/JSON and figures into an output directory and
returns the main output's path, so a study can call them as phases:

    analyze_weights(base, checkpoints, out_dir) -> weights.csv
    kl_curve(base, checkpoints, data, out_dir) -> kl.json
    causal_trace(model_dir, facts, out_dir) -> trace.json
"""

from __future__ import annotations


def __getattr__(name: str):  # lazy: importing scalpel.analyze must not pull in numba/torch
    if name == "analyze_weights":
        from scalpel.analyze.weights import analyze_weights

        return analyze_weights
    if name == "kl_curve":
        from scalpel.analyze.kl import kl_curve

        return kl_curve
    if name == "causal_trace":
        from scalpel.analyze.trace import causal_trace

        return causal_trace
    raise AttributeError(name)


__all__ = ["analyze_weights", "kl_curve", "causal_trace"]
