"""The terminal belongs to scalpel's own progress lines: libraries are told to keep their bars and chatter to
themselves. Called by every command that trains or runs a study, and by the worker processes they start."""

from __future__ import annotations


def quiet_libraries() -> None:
    """Keep the terminal for scalpel's own progress lines: no library progress bars or deprecation chatter."""
    import logging
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=r".*(gradient|activation)_checkpointing.*", category=FutureWarning)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
