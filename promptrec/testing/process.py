"""Run `promptrec serve` as a child process on loopback (for tests, the load test and the crash test)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``promptrec serve ARGS`` on a free loopback port; ``with`` starts it and stops it gracefully."""

    def __init__(self, *args: str, log: str | Path | None = None, ready_timeout: float = 120.0,
                 env: dict[str, str] | None = None):
        self.args, self.port, self.env = list(args), free_port(), env or {}
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log) if log else None
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServerProcess":
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", "promptrec.cli.main", "serve", *self.args,
                                      "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env}, start_new_session=True)
        until = time.monotonic() + self.ready_timeout
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise RuntimeError(f"promptrec serve exited with code {self.proc.returncode} before it was ready"
                                   + (f"; see {self.log}" if self.log else ""))
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.kill()
        raise TimeoutError(f"promptrec serve was not ready within {self.ready_timeout:.0f} s")

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 60), **kw)

    def stop(self, timeout: float = 60.0) -> int:
        """Graceful shutdown (SIGTERM), then SIGKILL if it does not finish within ``timeout``."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        """SIGKILL to the server and its children (e.g. a vLLM engine core): no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
