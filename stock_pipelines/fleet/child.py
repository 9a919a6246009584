"""One collector child process: spawning it, reading its output without threads, signalling it.

Children run in their own session, so a Ctrl-C in the supervisor's terminal reaches only the
supervisor, which passes the stop on (and waits). On Linux each child also gets
PR_SET_PDEATHSIG=SIGTERM: if the supervisor itself is SIGKILLed, its collectors still stop
cleanly instead of running on unsupervised (a second fleet would then start duplicates).
The supervisor is single-threaded, which is what makes `preexec_fn` safe to use here.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
from collections import deque
from typing import IO

PR_SET_PDEATHSIG = 1
MAX_LINE = 64 * 1024


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor's own stop still reaches the children


class Child:
    """A running `collector run` process and what it said: its start line (the self-diagnosis
    passed) and its last `collector <id>: ...` problem lines (why it exited)."""

    def __init__(self, collector_id: str, argv: list[str], env: dict[str, str], log: IO[str]) -> None:
        self.id, self.log = collector_id, log
        self.process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 (see above)
        )
        self.pid = self.process.pid
        self.started_line: dict | None = None
        self.problems: deque[str] = deque(maxlen=5)
        self._partial = {"stdout": b"", "stderr": b""}
        for stream in (self.process.stdout, self.process.stderr):
            os.set_blocking(stream.fileno(), False)

    def streams(self) -> list[tuple[IO[bytes], str]]:
        return [(s, name) for s, name in ((self.process.stdout, "stdout"), (self.process.stderr, "stderr"))
                if s is not None and not s.closed]

    def read(self, stream: IO[bytes], name: str) -> bool:
        """Consume what `stream` has; False at its end (the stream is then closed)."""
        try:
            chunk = os.read(stream.fileno(), 65536)
        except BlockingIOError:
            return True
        if not chunk:
            if self._partial[name]:
                self._line(name, self._partial[name])
                self._partial[name] = b""
            stream.close()
            return False
        data = self._partial[name] + chunk
        *lines, rest = data.split(b"\n")
        if len(rest) > MAX_LINE:  # a runaway line without a newline: pass it on in pieces
            lines.append(rest)
            rest = b""
        self._partial[name] = rest
        for line in lines:
            self._line(name, line)
        return True

    def _line(self, name: str, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if name == "stdout" and self.started_line is None and text.startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and parsed.get("collector") == self.id and "pid" in parsed:
                self.started_line = parsed
        prefix = f"collector {self.id}: "
        if name == "stderr" and text.startswith(prefix):
            self.problems.append(text.removeprefix(prefix))
        self.log.write(f"[{self.id}] {text}\n")

    def poll(self) -> int | None:
        return self.process.poll()

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass

    def drain(self) -> None:
        """Read what is left in the pipes of an exited child (its last words name the reason)."""
        for stream, name in self.streams():
            while self.read(stream, name) and select.select([stream], [], [], 0)[0]:
                pass

    def close(self) -> None:
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()

