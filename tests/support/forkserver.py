"""A fork server: product processes forked from one interpreter that has imported the product.

Starting `python -m ops.cli run ...` costs ~2 s of CPU, nearly all of it imports, and a
chaos run restarts processes dozens of times per seed on a machine of two cores. A child forked
from a server that imported the product once is ready after ~0.2 s of CPU. Each child is still
an OS process of its own running the product's `checkout-saga run` with its own environment,
working directory, log, connections and event loop, and is killed with kill -9 like any other:
the product has no import-time side effects (DESIGN §6), so it shares nothing with its siblings
but imported code.

Run as `python -m tests.support.forkserver`: one JSON request per line on stdin, one JSON answer
per line on stdout. `start` forks a child and answers its pid; `status` answers a child's exit
code (negative: the signal that ended it, as subprocess reports it) or null while it runs.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

POLL_S = 0.02
PRELOADED = ("ops.cli", "ops.cli.relay", "services.runtime")
"""What the server imports once, before any fork: nearly all a product process imports."""


class ForkServer:
    """The test's end of a fork server process; safe to use from several threads."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def _ask(self, request: dict[str, Any]) -> Any:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the fork server is gone (exit code {self._proc.poll()})")
        return json.loads(answer)

    def start(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> ForkedProcess:
        """Fork a child running `checkout-saga run <args>` with this environment and log."""
        request = {"op": "start", "args": args, "env": env, "cwd": str(cwd), "log": str(log)}
        return ForkedProcess(self, int(self._ask(request)["pid"]))

    def status(self, pid: int) -> int | None:
        """A child's exit code, or None while it runs."""
        code = self._ask({"op": "status", "pid": pid})["code"]
        return None if code is None else int(code)

    def close(self) -> None:
        """Stop the server (children that still run are left alone: stop them first)."""
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(10)


class ForkedProcess:
    """A child of the fork server, with the part of subprocess.Popen's interface Fleet uses."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once the child ended, else None."""
        if self.returncode is None:
            self.returncode = self.server.status(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until the child ended; subprocess.TimeoutExpired after the timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(POLL_S)
        return code

    def send_signal(self, sig: int) -> None:
        """Signal the child unless it already ended (then there is nothing to signal)."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the child."""
        self.send_signal(signal.SIGKILL)


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the requested product process; never returns."""
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        # The server's request and answer pipes (0 and 1) are replaced, not inherited.
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from ops.cli import cli

        cli(args=["run", *request["args"]], prog_name="checkout-saga")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(ended: dict[int, int]) -> None:
    """Collect every child that ended, with its code as subprocess would report it."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ended[pid] = os.waitstatus_to_exitcode(status)


def serve() -> None:
    """Import the product once, then answer requests until stdin closes."""
    for module in PRELOADED:
        importlib.import_module(module)
    ended: dict[int, int] = {}
    for line in sys.stdin.buffer:
        request = json.loads(line)
        _reap(ended)
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                _child(request)
            ended.pop(pid, None)  # a reused pid: the code of its earlier child is not this one's
            answer: dict[str, Any] = {"pid": pid}
        else:
            answer = {"code": ended.get(request["pid"])}
        os.write(1, json.dumps(answer).encode() + b"\n")


if __name__ == "__main__":
    serve()
