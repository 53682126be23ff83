"""The vLLM server of GRPO's server mode, as a process scalpel owns: start it, wait for health, always stop it.

Why: in TRL's server mode the trainer only connects (``VLLMClient.check_server`` polls ``GET /health`` for 240 s and
then fails with a generic message); nobody starts or stops ``trl vllm-serve``. ``VLLMServer`` starts the command in
its own process group, polls the same ``/health`` endpoint until it answers 200, and raises a clear error naming
the command, the timeout and the tail of its log when the process dies first or the timeout passes. Leaving the
``with`` block stops the whole process group (SIGTERM, then SIGKILL after ``stop_grace`` s) whatever happened inside:
normal exit, an exception, Ctrl-C; and the server dies with the process that started it (``scalpel.processes``).
``scalpel.study.launch`` runs it around a GRPO arm's training in server mode.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from scalpel.processes import die_with_parent


class ServerError(RuntimeError):
    """The vLLM server did not become healthy (the message names the command, the reason and its log)."""


def trl_vllm_serve_command(model: str, *, port: int, gpu_memory_utilization: float,
                           tensor_parallel_size: int = 1) -> list[str]:
    """The ``trl vllm-serve`` command of a study's GRPO arms (the GPUs come from CUDA_VISIBLE_DEVICES)."""
    return ["trl", "vllm-serve", "--model", model, "--port", str(port),
            "--gpu_memory_utilization", str(gpu_memory_utilization), "--tensor_parallel_size",
            str(tensor_parallel_size)]


class VLLMServer:
    def __init__(self, command: list[str], *, host: str = "127.0.0.1", port: int, log_path: str | Path,
                 timeout: float = 600.0, poll: float = 1.0, stop_grace: float = 20.0, env: dict | None = None):
        self.command, self.host, self.port = list(command), host, port
        self.log_path, self.timeout, self.poll, self.stop_grace = Path(log_path), timeout, poll, stop_grace
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.port}/health"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=min(5.0, self.poll + 1)) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> "VLLMServer":
        if self.healthy():
            raise ServerError(f"something already answers {self.health_url}: stop it, or use another "
                              "study.grpo.vllm_server_port")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(self.env or {})}, start_new_session=True,
                                            preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        finally:
            log.close()
        deadline = time.monotonic() + self.timeout
        while not self.healthy():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise ServerError(f"the vLLM server exited with code {code} before answering {self.health_url} "
                                  f"({' '.join(self.command)}); its log {self.log_path} ends:\n{self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"the vLLM server did not answer {self.health_url} within {self.timeout:g} s "
                                  f"({' '.join(self.command)}); stopped it. Its log {self.log_path} ends:\n"
                                  f"{self._tail()}")
            time.sleep(self.poll)
        return self

    def stop(self) -> None:
        """Stop the server's whole process group (vLLM starts workers of its own); idempotent."""
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, self.stop_grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
            try:
                p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)  # workers that outlived the leader

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
