"""The grading pool: math-verify in worker processes with a hard per-item timeout that holds on any thread.

math-verify bounds its own work with ``signal.alarm``, which only works on the main thread of the main
interpreter, and a signal cannot interrupt one long C-level computation anyway (sympy evaluating ``10^{10^{10}}``
is a single big-integer power). So the comparison rules (``scalpel.grading.compare``) run with math-verify's
timeouts off inside worker processes, and the parent enforces the limit from outside: an item not answered within
``timeout`` seconds gets its worker killed (SIGKILL) and replaced, and scores ``TIMEOUT``. ``Grader.grade`` never
raises; workers that cannot even start give ``UNAVAILABLE`` (logged).

- Workers are forked by a *zygote*: one helper process (``python -P -c …`` running ``_zygote_main``, started with
  ``subprocess``, never by forking the caller) imports math-verify once (and warms its LaTeX parser when idle),
  then forks a ready worker in milliseconds whenever asked, so a killed worker is replaced at once with warm
  caches. Nothing depends on ``multiprocessing`` (no fork of a multi-threaded trainer, no re-import of the user's
  ``__main__``, nothing to pickle). Parent and worker speak JSON lines over two pipes.
- Batching: a chunk of items goes to an idle worker as one line, answered one line per item (the outcome's name);
  the per-item deadline restarts at each answer. Items with the same gold travel together (a GRPO group goes to
  one worker, which reads its gold once). When a worker is killed mid-chunk, its item scores ``TIMEOUT`` and the
  rest go back to the queue.
- Caching: identical items are graded once per call, definite outcomes are kept in a bounded LRU across calls
  (timeouts never are: machine load causes them), and each worker caches parsed golds.
- Safety: each worker's address space is capped (``memory_limit_mb``, default 2 GiB). The zygote exits when the
  grader closes its socket or the caller dies, and its workers with it (``PR_SET_PDEATHSIG``, else a polling
  thread). One lock serialises ``grade`` calls, so a grader is safe to share between threads.

POSIX only (``fork``, ``SCM_RIGHTS``). This module and ``compare`` import only the standard library at top level:
the parent never loads math-verify.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from scalpel.grading.compare import CORRECT, GOLD_OK, GOLD_UNPARSEABLE, NO_PREDICTION, WRONG
from scalpel.grading.extract import answer_candidates

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------------
# The grader: a pool of math-verify worker processes with a per-item timeout
# ---------------------------------------------------------------------------------------------------------------

# Outcomes: a worker answers with one of ``compare``'s (or ``ERROR``); the parent adds the rest.
ERROR = "error"  # the comparison raised inside the worker (e.g. MemoryError at the address-space cap)
TIMEOUT = "timeout"  # no answer within the per-item (or per-call) time limit: the worker was killed
CRASHED = "crashed"  # the worker died on this item
UNAVAILABLE = "unavailable"  # no worker could be started
FAILED = (TIMEOUT, CRASHED, ERROR, UNAVAILABLE)  # not graded: neither right nor wrong is known
_DEFINITE = {CORRECT, WRONG, NO_PREDICTION, GOLD_OK, GOLD_UNPARSEABLE}  # safe to cache across calls
_ANSWERS = {o.encode(): o for o in (*_DEFINITE, ERROR)}  # what a worker may answer

# (gold, candidates): the gold answer and the prediction readings to try in order (``answer_candidates``); an
# empty candidate list only checks that the gold parses (``GOLD_OK``).
Item = tuple[str, "list[str] | tuple[str, ...]"]


@dataclass
class GradingStats:
    """Running totals of one grader (``Grader.stats``); every item lands in exactly one outcome."""

    items: int = 0  # items asked for, duplicates included
    graded: int = 0  # unique items sent to a worker (the rest came from caches)
    outcomes: dict[str, int] = field(default_factory=collections.Counter)
    worker_kills: int = 0


def _default_workers() -> int:
    env = os.environ.get("SCALPEL_GRADER_WORKERS")
    return max(1, int(env)) if env else max(1, min(2, os.cpu_count() or 1))


# The zygote's program: this package from wherever it is (``-P`` keeps the caller's directory off the path).
_ZYGOTE_SCRIPT = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r}); "
                  "from scalpel.grading.pool import _zygote_main; _zygote_main(sys.argv[1:])")


class _Zygote:
    """A process that has imported and warmed up math-verify and forks ready workers on request in milliseconds.

    It is started as ``python -P -c _ZYGOTE_SCRIPT --zygote FD`` with one end of a socket pair; each ``b"F"`` it
    receives forks a worker and sends back its pid and the parent's ends of two pipes (``SCM_RIGHTS``). It
    auto-reaps its children (``SIGCHLD`` ignored) and exits when the socket closes, i.e. when the parent closes or
    dies.
    """

    def __init__(self, memory_limit_mb: int | None, startup_timeout: float):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = "1"
        ours, theirs = socket.socketpair()
        argv = [sys.executable, "-P", "-c", _ZYGOTE_SCRIPT, "--zygote", str(theirs.fileno())]
        if memory_limit_mb:
            argv += ["--memory-limit-mb", str(int(memory_limit_mb))]
        try:
            self.proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        self.sock = ours
        self.startup_timeout = startup_timeout
        self.ready = False

    def fork(self) -> tuple[int, int, int]:
        """A new worker: (pid, fd to write requests to, fd to read answers from). Raises OSError on failure."""
        if not self.ready:
            self.sock.settimeout(self.startup_timeout)
            if self.sock.recv(1) != b"R":
                raise OSError("the grading zygote exited during start-up")
            self.ready = True
        self.sock.settimeout(30.0)
        self.sock.sendall(b"F")
        msg, fds, _, _ = socket.recv_fds(self.sock, 64, 2)
        if len(fds) != 2 or not msg:
            for fd in fds:
                os.close(fd)
            raise OSError("the grading zygote did not fork a worker")
        for fd in fds:
            os.set_inheritable(fd, False)
        return int(msg), fds[0], fds[1]

    def close(self) -> None:
        try:
            self.sock.close()  # EOF: the zygote exits, its idle workers follow
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


class _Worker:
    """One forked worker process and the chunk it is working on."""

    def __init__(self, pid: int, write_fd: int, read_fd: int):
        self.pid, self.wfd, self.fd = pid, write_fd, read_fd
        self.buf = b""
        self.ready = False
        self.chunk: list[int] = []  # unique-item indices, in the order sent
        self.done = 0  # answers received for the current chunk
        self.deadline = 0.0

    @property
    def busy(self) -> bool:
        return self.done < len(self.chunk)

    def send(self, payload: bytes) -> bool:
        """Write a whole request (the worker is idle, reading, so this does not block for long)."""
        view = memoryview(payload)
        try:
            while view:
                view = view[os.write(self.wfd, view):]
            return True
        except OSError:
            return False

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)  # the zygote reaps it
        except OSError:
            pass
        self._close_fds()

    def close(self) -> None:
        self.kill()  # idle or not, a worker holds nothing worth a graceful exit

    def _close_fds(self) -> None:
        for fd in (self.wfd, self.fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.wfd = self.fd = -1


class Grader:
    """A persistent pool of math-verify worker processes with a per-item timeout (see the module docstring).

    Args:
        workers: worker processes (default ``min(2, cpus)``, or ``$SCALPEL_GRADER_WORKERS``).
        timeout: seconds one item may take once its worker has it; then the worker is killed and replaced.
        call_timeout: optional bound on one ``grade`` call; items still unanswered then score ``TIMEOUT``.
        startup_timeout: seconds the zygote may take to import math-verify (and a new worker to say it is ready).
        memory_limit_mb: address-space cap of each worker (``None``: no cap).
        chunk_size: most items sent to a worker at once.
        cache_size: definite outcomes kept across calls (0: no cache).

    ``timeout`` and ``call_timeout`` are read at every call and may be changed between calls.
    """

    def __init__(self, workers: int | None = None, timeout: float = 5.0, call_timeout: float | None = None,
                 startup_timeout: float = 60.0, memory_limit_mb: int | None = 2048, chunk_size: int = 16,
                 cache_size: int = 100_000):
        if timeout <= 0 or (call_timeout is not None and call_timeout <= 0):
            raise ValueError("grader timeouts must be positive")
        self.n_workers = workers or _default_workers()
        self.timeout = float(timeout)
        self.call_timeout = call_timeout
        self.startup_timeout = startup_timeout
        self.memory_limit_mb = memory_limit_mb
        self.chunk_size = max(1, chunk_size)
        self.cache_size = cache_size
        self.stats = GradingStats()
        self._cache: collections.OrderedDict[tuple, str] = collections.OrderedDict()
        self._workers: list[_Worker] = []
        self._zygote: _Zygote | None = None
        self._lock = threading.Lock()
        self._failed_starts = 0
        self._broken = False

    # -- public ------------------------------------------------------------------------------------------------

    def grade(self, items: list[Item]) -> list[str]:
        """One outcome per item, in order. Never raises; blocks at most ~``timeout`` per unique uncached item."""
        with self._lock:
            try:
                out = self._grade(items)
            except Exception:  # a bug here must not take a training run or an evaluation down: log, score
                log.exception("grader failed; unanswered items score %s", ERROR)
                self.close_workers()
                out = [ERROR] * len(items)
            self.stats.items += len(items)
            self.stats.outcomes.update(out)
            return out

    def grade_answers(self, golds: list[str], answers: list[str | None]) -> list[str]:
        """The outcome of each gold and extracted answer (``extract.extract_answer``): what every scorer calls.
        No answer is ``NO_PREDICTION`` (``grade`` would check the gold alone)."""
        out = self.grade([(g, answer_candidates(a)) for g, a in zip(golds, answers)])
        return [NO_PREDICTION if o == GOLD_OK else o for o in out]

    def warm_up(self, wait: bool = True) -> None:
        """Start the workers now (otherwise the first ``grade`` call pays their ~1 s import); by default wait
        until they are ready."""
        with self._lock:
            self._spawn_missing()
            if wait:
                self._run([])  # with nothing to grade, runs until every worker is ready (or cannot start)

    def close_workers(self) -> None:
        for w in self._workers:
            w.close()
        self._workers = []
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None

    def close(self) -> None:
        with self._lock:
            self.close_workers()

    # -- internals ---------------------------------------------------------------------------------------------

    def _grade(self, items: list[Item]) -> list[str]:
        keys = [(_as_text(g), tuple(_as_text(c) for c in cands or ())) for g, cands in items]
        out: list[str | None] = [None] * len(keys)
        index: dict[tuple, int] = {}
        todo: list[tuple] = []
        for j, key in enumerate(keys):
            if key in self._cache:
                self._cache.move_to_end(key)
                out[j] = self._cache[key]
            elif key not in index:
                index[key] = len(todo)
                todo.append(key)
        answers = self._run(todo) if todo else []
        for j, key in enumerate(keys):
            if out[j] is None:
                out[j] = answers[index[key]]
        for key, outcome in zip(todo, answers):
            if outcome in _DEFINITE and self.cache_size and len(key[0]) + sum(map(len, key[1])) < 4096:
                self._cache[key] = outcome
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _spawn_missing(self) -> None:
        while not self._broken and len(self._workers) < self.n_workers:
            try:
                if self._zygote is None or self._zygote.proc.poll() is not None:
                    if self._zygote is not None:
                        self._zygote.close()
                    self._zygote = _Zygote(self.memory_limit_mb, self.startup_timeout)
                w = _Worker(*self._zygote.fork())
            except (OSError, ValueError):
                log.exception("cannot start a grading worker")
                if self._zygote is not None:
                    self._zygote.close()
                    self._zygote = None
                self._note_failed_start()
                continue
            self._failed_starts = 0
            w.deadline = time.monotonic() + self.startup_timeout
            self._workers.append(w)

    def _note_failed_start(self) -> None:
        self._failed_starts += 1
        if self._failed_starts >= 3:
            self._broken = True
            log.error("grading workers fail to start (3 times in a row): every item now scores %s", UNAVAILABLE)

    def _retire(self, w: _Worker) -> None:
        w.kill()
        self._workers.remove(w)
        self.stats.worker_kills += 1

    def _run(self, todo: list[tuple]) -> list[str]:
        results: list[str | None] = [None] * len(todo)
        first = {}  # items with the same gold go to the same worker, consecutively: it parses that gold once
        for i, (gold, _) in enumerate(todo):
            first.setdefault(gold, i)
        pending = collections.deque(sorted(range(len(todo)), key=lambda i: first[todo[i][0]]))
        call_deadline = time.monotonic() + self.call_timeout if self.call_timeout else None
        self.stats.graded += len(todo)
        for w in list(self._workers):  # left mid-chunk by an interrupted call: its output is stale
            if w.busy:
                self._retire(w)

        def requeue(w: _Worker) -> None:
            pending.extendleft(reversed(w.chunk[w.done:]))
            w.chunk, w.done = [], 0

        def take_chunk() -> list[int]:
            """About an even share of what is left, in whole same-gold runs (unless one run exceeds chunk_size)."""
            share = min(self.chunk_size, max(1, -(-len(pending) // self.n_workers)))
            chunk: list[int] = []
            while pending and len(chunk) < self.chunk_size:
                gold = todo[pending[0]][0]
                run = 0
                while run < len(pending) and todo[pending[run]][0] == gold:
                    run += 1
                if chunk and len(chunk) + run > share:
                    break
                chunk += [pending.popleft() for _ in range(min(run, self.chunk_size - len(chunk)))]
                if len(chunk) >= share:
                    break
            return chunk

        warming = not todo
        while pending or any(w.busy for w in self._workers) or (warming and not all(w.ready for w in self._workers)):
            self._spawn_missing()
            if self._broken and not self._workers:
                for i in pending:
                    results[i] = UNAVAILABLE
                pending.clear()
                break
            now = time.monotonic()
            # Hand chunks to idle, ready workers (an even split, so both cores work on small batches).
            for w in list(self._workers):
                if w.ready and not w.busy and pending:
                    w.chunk, w.done = take_chunk(), 0
                    payload = json.dumps([[todo[i][0], list(todo[i][1])] for i in w.chunk]).encode() + b"\n"
                    if not w.send(payload):
                        requeue(w)
                        self._retire(w)
                        continue
                    w.deadline = now + self.timeout
            # Wait for answers (or a deadline).
            live = [w for w in self._workers if not w.ready or w.busy]
            if not live:
                continue
            wait = max(0.0, min(w.deadline for w in live) - now)
            if call_deadline is not None:
                wait = min(wait, max(0.0, call_deadline - now))
            with selectors.DefaultSelector() as sel:
                for w in live:
                    sel.register(w.fd, selectors.EVENT_READ, w)
                events = sel.select(timeout=wait)
            for key, _ in events:
                w = key.data
                try:
                    data = os.read(w.fd, 1 << 16)
                except OSError:
                    data = b""
                if not data:  # EOF: the worker died
                    if w.busy:
                        results[w.chunk[w.done]] = CRASHED
                        log.warning("grading worker died on item %r", _short(todo[w.chunk[w.done]]))
                        w.done += 1
                        requeue(w)
                    elif not w.ready:
                        self._note_failed_start()
                    self._retire(w)
                    continue
                w.buf += data
                *lines, w.buf = w.buf.split(b"\n")
                for line in lines:
                    if not w.ready:
                        w.ready = line.strip() == b"ready"
                        continue
                    if w.busy:
                        outcome = _ANSWERS.get(line.strip(), ERROR)
                        results[w.chunk[w.done]] = outcome
                        w.done += 1
                        w.deadline = time.monotonic() + self.timeout
                if w.ready and not w.busy:
                    w.chunk, w.done = [], 0
            # Enforce deadlines.
            now = time.monotonic()
            for w in list(self._workers):
                if w.busy and now >= w.deadline:
                    results[w.chunk[w.done]] = TIMEOUT
                    log.warning("grading timed out after %.1f s on item %r; worker replaced",
                                self.timeout, _short(todo[w.chunk[w.done]]))
                    w.done += 1
                    requeue(w)
                    self._retire(w)
                elif not w.ready and now >= w.deadline:
                    log.error("a grading worker did not start within %.0f s", self.startup_timeout)
                    self._note_failed_start()
                    self._retire(w)
            if call_deadline is not None and now >= call_deadline:
                for w in list(self._workers):
                    if w.busy:
                        requeue(w)
                        self._retire(w)
                for i in pending:
                    results[i] = TIMEOUT
                if pending:
                    log.warning("grading call exceeded %.1f s: %d items score %s", self.call_timeout,
                                len(pending), TIMEOUT)
                pending.clear()
        self._spawn_missing()  # replace killed workers now (a fork: milliseconds), not at the next call's start
        return [r if r is not None else ERROR for r in results]


def _as_text(x) -> str:
    return x if isinstance(x, str) else ("" if x is None else str(x))


def _short(item, n: int = 200) -> str:
    text = repr(item)
    return text if len(text) <= n else text[:n] + f"…(+{len(text) - n} chars)"


# ---------------------------------------------------------------------------------------------------------------
# The process-wide default grader (what the reward and the evaluation's maths scores use)
# ---------------------------------------------------------------------------------------------------------------

_default: Grader | None = None
_default_lock = threading.Lock()


def default_grader() -> Grader:
    """The shared grader; created on first use with ``$SCALPEL_GRADER_TIMEOUT`` seconds per item (default 5)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Grader(timeout=float(os.environ.get("SCALPEL_GRADER_TIMEOUT", "5")))
        return _default


def configure_grader(**kwargs) -> Grader:
    """Replace the shared grader (closing the old one's workers); kwargs as for ``Grader``."""
    global _default
    with _default_lock:
        old, _default = _default, Grader(**kwargs)
    if old is not None:
        old.close()
    return _default


@atexit.register
def shutdown_grader() -> None:
    """Close the shared grader's workers and forget it (the next use creates a fresh one)."""
    global _default
    with _default_lock:
        old, _default = _default, None
    if old is not None:
        old.close()


# ---------------------------------------------------------------------------------------------------------------
# The zygote and its workers
# ---------------------------------------------------------------------------------------------------------------


# Typical competition-maths answers (the shapes of MATH-500 / OpenR1 golds), parsed by the zygote while it is idle.
# Workers forked afterwards (replacements of killed ones) inherit antlr's prediction caches warm instead of
# rebuilding them; on MATH-500 golds a cold worker grades ~30 % slower.
_WARM_UP = [
    ("5", "5"), ("-3", "-3"), ("0.25", "\\frac{1}{4}"), ("\\frac{1}{2}", "0.5"), ("\\dfrac{3}{4}", "\\tfrac34"),
    ("2\\sqrt{3}", "\\sqrt{12}"), ("\\sqrt[3]{2}", "2^{1/3}"), ("\\frac{\\pi}{3}", "60^\\circ"), ("3\\pi", "3 \\pi"),
    ("(1,2)", "(1, 2)"), ("[0,\\infty)", "[0, \\infty)"), ("(-\\infty, -1] \\cup [1, \\infty)", "x \\le -1"),
    ("\\{1,2,3\\}", "1, 2, 3"), ("x=3", "3"), ("y = 2x + 1", "2x+1"), ("x^2+2x+1", "(x+1)^2"), ("a_n = 2^n", "2^n"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"), ("B", "\\text{(B)}"),
    ("\\text{Evelyn}", "Evelyn"), ("10\\%", "10"), ("\\$18.90", "18.90"), ("1,000", "1000"), ("6 \\text{ cm}", "6"),
    ("\\log_2 8", "3"), ("\\sin 30^\\circ", "\\frac12"), ("e^{2}", "\\exp(2)"), ("\\binom{5}{2}", "10"), ("4!", "24"),
    ("|x| < 2", "-2 < x < 2"), ("3 + 2i", "2i + 3"), ("\\frac{1}{x-1}", "1/(x-1)"), ("k \\geq 2", "[2, \\infty)"),
    ("3:30 p.m.", "15:30"), ("12 (marbles)", "12"), ("13 n, 5 d", "5 d, 13 n"), ("-2 < x \\le 5 : (-2, 5]", "(-2, 5]"),
]


def _zygote_main(argv: list[str]) -> None:  # pragma: no cover - runs in the subprocess
    import select
    import warnings

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it kills workers itself
    os.dup2(2, 1)  # nothing may print into a protocol pipe; libraries that print go to stderr
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    sock = socket.socket(fileno=int(argv[argv.index("--zygote") + 1]))
    limit = int(argv[argv.index("--memory-limit-mb") + 1]) if "--memory-limit-mb" in argv else None

    from scalpel.grading.compare import Comparer

    grade = Comparer().grade
    warm_up = list(_WARM_UP)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    sock.sendall(b"R")
    while True:
        if warm_up and not select.select([sock], [], [], 0)[0]:
            # Idle: fill antlr's prediction caches, one answer at a time, so later forks start warm.
            gold, pred = warm_up.pop(0)
            try:
                grade(gold, [f"\\boxed{{{pred}}}", pred])
            except Exception:  # noqa: BLE001
                pass
            continue
        if sock.recv(1) != b"F":
            break
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.close(req_w)
                os.close(ans_r)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _serve(req_r, ans_w, grade, limit)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(ans_w)
        socket.send_fds(sock, [str(pid).encode()], [req_w, ans_r])
        os.close(req_w)
        os.close(ans_r)


def _serve(req_fd: int, ans_fd: int, grade, memory_limit_mb: int | None) -> None:  # pragma: no cover
    if memory_limit_mb:
        import resource

        limit = memory_limit_mb * 2**20
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass
    zygote = os.getppid()
    # The zygote exits with its parent (its socket closes); its workers must follow even mid-computation, when
    # a thread could not run (a big-integer power holds the GIL): Linux kills them with the zygote.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != zygote:  # the zygote died before prctl took effect
        os._exit(0)

    def watch_parent() -> None:  # elsewhere: a polling fallback
        while True:
            time.sleep(1.0)
            if os.getppid() != zygote:
                os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    answers = os.fdopen(ans_fd, "wb", buffering=0)
    answers.write(b"ready\n")
    for line in os.fdopen(req_fd, "rb"):
        try:
            batch = json.loads(line)
        except ValueError:
            continue
        for gold, candidates in batch:
            try:
                outcome = grade(gold, candidates)
            except BaseException:  # noqa: BLE001 - MemoryError, RecursionError, sympy's own errors: score, go on
                outcome = ERROR
            answers.write(outcome.encode() + b"\n")

