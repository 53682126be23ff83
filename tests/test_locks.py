"""The shared file lock: a second holder is refused (``wait=False``) while the first holds it, and let in after."""

from __future__ import annotations

import pytest

from scalpel.locks import locked


def test_a_held_lock_refuses_a_second_holder_until_released(tmp_path):
    path = tmp_path / "sub" / "x.lock"
    with locked(path):
        assert path.is_file()
        with pytest.raises(BlockingIOError):  # flock locks belong to the open file: a second open is refused
            with locked(path, wait=False):
                pass
    with locked(path, wait=False):  # released on leaving the block
        pass
