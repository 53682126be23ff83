"""Evaluation: generation backends, benchmark scoring, the suite runner, pass@k and confidence intervals.

``evaluate_model(model_dir, out_dir, EvalConfig(...))`` for one model, ``evaluate_models({name: dir}, out_root,
cfg)`` for a study's base model and checkpoints; ``scalpel eval`` on the command line. The benchmark registry lives
in ``scalpel.data.benchmarks``.
"""

from __future__ import annotations

__all__ = ["EvalConfig", "evaluate_model", "evaluate_models"]


def __getattr__(name: str):  # lazy: `scalpel.evaluate.generate` users should not pay for the runner's imports
    if name in __all__:
        from scalpel.evaluate import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
