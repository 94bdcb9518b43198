"""A real doclane process (``serve``, or ``worker``) on a free port, always stopped by the test."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        max_file_bytes: int | None = None,
        command: tuple[str, ...] = ("serve",),
    ) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.command = command  # ("worker",) runs a worker: its port serves only its probes
        self.max_file_bytes = max_file_bytes  # RLIMIT_FSIZE: larger writes fail, like a full disk
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "DOCLANE_DATA_DIR": str(self.data_dir),
            "DOCLANE_MAX_ANSWER_TOKENS": "24",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "doclane", *self.command, "--port", str(self.port)],
                env=env,
                preexec_fn=self._limit_file_size if self.max_file_bytes else None,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            if self._ready():
                return self
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"server did not start in {START_TIMEOUT}s:\n{self.log()}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.http}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _limit_file_size(self) -> None:
        assert self.max_file_bytes is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_bytes, self.max_file_bytes))

    def kill(self) -> None:
        """SIGKILL: a crash, as far as the server can tell."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
