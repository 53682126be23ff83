"""Hub ids -> local model directories, through huggingface_hub's own cache.

Why: the analyses read safetensors files themselves (memory-mapped, verified by ``scalpel.integrity``), so they need
a directory; and training, evaluation and the analyses must all read the same snapshot. Every command that takes a
model calls ``local_model``: a local path is returned as it is; ``owner/name`` goes through
``huggingface_hub.snapshot_download``, which downloads what is missing when the hub is reachable and, with
``HF_HUB_OFFLINE=1``, returns the cached snapshot or fails. Only safetensors weights, configs and tokenizer files
are fetched (never pickle weights; Python files only with ``trust_remote_code``).
"""

from __future__ import annotations

import re
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What a model directory needs: weights (safetensors only), configs, tokenizer and chat-template files.
MODEL_FILES = ["*.safetensors", "*.safetensors.index.json", "*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja"]


class HubModelError(FileNotFoundError):
    """A hub id that cannot be turned into a local directory (printed by the CLI without a traceback)."""


def is_hub_id(model: str | Path) -> bool:
    """``owner/name`` that is not an existing path."""
    return not Path(str(model)).expanduser().exists() and bool(_HUB_ID.match(str(model)))


def local_model(model: str | Path, *, revision: str | None = None, trust_remote_code: bool = False) -> Path:
    """The local directory of ``model``: itself when it is a path, else the hub cache's snapshot of the hub id."""
    path = Path(str(model)).expanduser()
    if path.exists() or not is_hub_id(model):
        return path  # callers check the directory (missing, not a model, damaged) with their own messages
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = MODEL_FILES + (["*.py"] if trust_remote_code else [])
    try:
        return Path(snapshot_download(str(model), revision=revision, allow_patterns=patterns))
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise HubModelError(f"model {model}: {type(exc).__name__} from the hub ({str(exc).splitlines()[0]}); "
                            "check the id, or log in (`hf auth login`) for a gated model") from None
    except LocalEntryNotFoundError as exc:
        how = "HF_HUB_OFFLINE=1 is set" if constants.is_offline_mode() else "the hub could not be reached"
        what = ("is only partly in" if isinstance(exc, IncompleteSnapshotError) else "is not in")
        raise HubModelError(f"model {model} {what} the Hugging Face cache ({constants.HF_HUB_CACHE}) and {how}: "
                            f"download it once where the hub is reachable (`hf download {model}`, same HF_HOME), "
                            "or pass a local model directory") from None
