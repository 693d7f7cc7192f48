"""Worker processes: new interpreters running one of massiva's modules.

Rendering a million rows or writing a million CSV lines is Python work, and one
process runs Python on one core at a time; the big jobs hand parts of it to workers.
A worker is ``python -m <module>``, never a multiprocessing child: multiprocessing
starts its workers by re-running the caller's ``__main__``, and a script that loads or
sends at its top level would do so again in every worker.

Streaming workers (:class:`Workers`) read pickled messages on stdin and answer each
with one pickled message on stdout, in order. A thread in the worker reads ahead, so
that its stdin never fills while it works: the parent's writes never wait on the
worker's, and the two cannot deadlock.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

M = TypeVar("M")

#: The folder that holds the massiva package: a worker finds massiva where we did.
_SOURCE = str(Path(__file__).resolve().parents[1])


def command(module: str, *args: str) -> list[str]:
    """The command line of a worker running ``module`` (``python -m module args``)."""
    return [sys.executable, "-m", module, *args]


def environment() -> dict[str, str]:
    """The environment of a worker: ours, with massiva's folder first on PYTHONPATH."""
    path = os.pathsep.join(filter(None, (_SOURCE, os.environ.get("PYTHONPATH"))))
    return {**os.environ, "PYTHONPATH": path}


class WorkerFailed(RuntimeError):
    """A worker process stopped before answering (its own error is on stderr)."""


class Workers:
    """``count`` streaming workers running ``module``, each first sent ``setup``.

    :meth:`map` sends the messages round-robin and yields the answers in the order of
    the messages. Use as a context manager: leaving it stops the workers.
    """

    def __init__(self, module: str, count: int, setup: object) -> None:
        self._processes: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(count):
                process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    command(module),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=environment(),
                )
                self._processes.append(process)
                _widen(process)
                self._send(process, setup)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.close(kill=exc_type is not None)

    def map(self, messages: Iterable[M], ahead: int = 2) -> Iterator[tuple[M, Any]]:
        """Each of ``messages`` with its answer, in order; at most ``ahead`` messages a
        worker wait for their answer at any time. If ``messages`` raises, the messages
        sent before come first, then its error."""
        waiting: deque[tuple[M, subprocess.Popen[bytes]]] = deque()
        count = len(self._processes)

        def answered() -> tuple[M, Any]:
            message, process = waiting.popleft()
            return message, self._receive(process)

        reading = iter(messages)
        for number in itertools.count():
            try:
                message = next(reading)
            except StopIteration:
                break
            except Exception:  # ``messages`` failed: the answers to those sent come first
                while waiting:
                    yield answered()
                raise
            process = self._processes[number % count]
            self._send(process, message)
            waiting.append((message, process))
            if len(waiting) >= ahead * count:
                yield answered()
        while waiting:
            yield answered()

    def close(self, *, kill: bool = False) -> None:
        """Stop the workers: their stdin closes, and one that does not end is killed;
        with ``kill`` (leaving on an error: their work is not wanted) at once."""
        for process in self._processes:
            if kill:
                process.kill()
            if process.stdin is not None and not process.stdin.closed:
                with suppress(BrokenPipeError):  # it already stopped
                    process.stdin.close()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self._processes = []

    @staticmethod
    def _send(process: subprocess.Popen[bytes], message: object) -> None:
        assert process.stdin is not None
        try:
            pickle.dump(message, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            process.stdin.flush()
        except BrokenPipeError:
            raise WorkerFailed(_stopped(process)) from None

    @staticmethod
    def _receive(process: subprocess.Popen[bytes]) -> Any:
        assert process.stdout is not None
        try:
            return pickle.load(process.stdout)  # noqa: S301 - our own worker's answer
        except EOFError:
            raise WorkerFailed(_stopped(process)) from None


#: Bytes a pipe to or from a worker holds: the messages a worker has yet to read fit
#: in it, so a write does not wait for the worker to be scheduled (1 MiB, Linux's
#: default most an unprivileged process may ask).
PIPE_BYTES = 1 << 20


def _widen(process: subprocess.Popen[bytes]) -> None:
    """Make the worker's pipes hold :data:`PIPE_BYTES` where the system allows it."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if set_size is None:
        return
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with suppress(OSError):  # not allowed: the default size is only slower
                fcntl.fcntl(stream.fileno(), set_size, PIPE_BYTES)


def ended(code: int) -> str:
    """How a process with the exit status ``code`` ended, as a message says it:
    "exited with code 1", "was killed by SIGKILL"."""
    if code < 0:
        with suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _stopped(process: subprocess.Popen[bytes]) -> str:
    return f"a worker process {ended(process.wait())} ({process.args!r}); see its error above"


def serve(setup: Callable[[Any], Callable[[Any], Any]]) -> None:
    """A streaming worker's main loop: ``setup`` takes the first message and returns
    the function that answers each of the others. Ends at the end of stdin; exits 1 if
    a message cannot be read (the parent, waiting for its answer, then sees it end)."""
    # Ctrl+C reaches the whole process group: the parent stops, and closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    messages: queue.Queue[Any] = queue.Queue()
    end, broken = object(), object()

    def read(stream: BinaryIO) -> None:
        try:
            while True:
                messages.put(pickle.load(stream))  # noqa: S301 - from the process that started us
        except EOFError:
            messages.put(end)
        except BaseException:  # cut short (the parent died mid-write) or unreadable
            traceback.print_exc()
            messages.put(broken)

    threading.Thread(target=read, args=(stdin,), daemon=True).start()
    answer = None
    while (message := messages.get()) is not end:
        if message is broken:
            sys.exit(1)
        if answer is None:
            answer = setup(message)
            continue
        pickle.dump(answer(message), stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()
