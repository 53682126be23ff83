"""Claim (issue 16, item 2 / acceptance): the vLLM server lifecycle — start, wait for /health, a clear error on a
health timeout or an early exit, and teardown of the whole process group on success, failure and Ctrl-C — with a
real local process standing in for `trl vllm-serve` (tests/train/_fake_vllm_server.py)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from scalpel.train.vllm_server import ServerError, VLLMServer, trl_vllm_serve_command

FAKE = Path(__file__).with_name("_fake_vllm_server.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _server(tmp_path, mode="ok", delay=0.5, timeout=30.0) -> tuple[VLLMServer, Path]:
    port, pidfile = _free_port(), tmp_path / f"worker-{mode}.pid"
    cmd = [sys.executable, str(FAKE), str(port), mode, str(delay), str(pidfile)]
    return VLLMServer(cmd, port=port, log_path=tmp_path / "vllm.log", timeout=timeout, poll=0.2,
                      stop_grace=5.0), pidfile


def _gone(*pids: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_starts_waits_for_health_and_stops_the_process_group(tmp_path):
    server, pidfile = _server(tmp_path, delay=1.0)
    t0 = time.monotonic()
    with server:
        assert time.monotonic() - t0 >= 1.0 and server.healthy()
        leader, worker = server.process.pid, int(pidfile.read_text())
        assert _alive(leader) and _alive(worker)
    assert _gone(leader, worker)
    assert not server.healthy()


def test_health_timeout_is_a_clear_error_and_the_server_is_stopped(tmp_path):
    server, pidfile = _server(tmp_path, mode="unhealthy", timeout=2.0)
    with pytest.raises(ServerError, match=r"did not answer http://127\.0\.0\.1:\d+/health within 2 s .*stopped it"):
        server.start()
    assert server.process is None and _gone(int(pidfile.read_text()))


def test_an_early_exit_names_the_code_and_shows_the_log(tmp_path):
    server, _ = _server(tmp_path, mode="crash")
    with pytest.raises(ServerError, match=r"exited with code 3(.|\n)*CUDA out of memory \(fake\)"):
        server.start()


@pytest.mark.parametrize("interrupt", [RuntimeError("training failed"), KeyboardInterrupt()])
def test_teardown_on_failure_and_ctrl_c(tmp_path, interrupt):
    server, pidfile = _server(tmp_path, delay=0.2)
    with pytest.raises(type(interrupt)):
        with server:
            leader, worker = server.process.pid, int(pidfile.read_text())
            raise interrupt
    assert _gone(leader, worker)


def test_a_port_already_serving_is_refused(tmp_path):
    first, _ = _server(tmp_path, delay=0.0)
    with first:
        second = VLLMServer(["true"], port=first.port, log_path=tmp_path / "second.log")
        with pytest.raises(ServerError, match="something already answers"):
            second.start()


def test_the_trl_command_carries_the_study_settings():
    cmd = trl_vllm_serve_command("allenai/OLMo-2-1124-7B-Instruct", port=8000, gpu_memory_utilization=0.7)
    assert cmd[:4] == ["trl", "vllm-serve", "--model", "allenai/OLMo-2-1124-7B-Instruct"]
    assert cmd[cmd.index("--gpu_memory_utilization") + 1] == "0.7" and cmd[cmd.index("--port") + 1] == "8000"
