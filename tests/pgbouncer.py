"""A PgBouncer of the test run's own (Debian package `pgbouncer`), in transaction mode.

It listens on a free loopback port and forwards every database name to the test PostgreSQL, so a
test gets a fresh database of its own (a pooler in transaction mode cannot keep a per-connection
`search_path`, so the schema-per-test trick of the other PostgreSQL tests does not apply).
PgBouncer refuses to run as root: under root it runs as the `postgres` user.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from onair.store.db import async_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    def __init__(self, postgres_url: str) -> None:
        target = make_url(postgres_url)
        self.user = target.username or "postgres"
        self.port = _free_port()
        self.url = f"postgresql://{self.user}@127.0.0.1:{self.port}"
        # not under pytest's tmp dir: that is private to root, and pgbouncer may run as postgres
        self._dir = Path(tempfile.mkdtemp(prefix="onair-pgbouncer-"))
        self._dir.chmod(0o755)
        self._target = target
        self._proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        users = self._dir / "users.txt"
        users.write_text(f'"{self.user}" ""\n')
        ini = self._dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={self._target.host or '127.0.0.1'} port={self._target.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\npool_mode = transaction\n"
            # fewer server connections than clients: consecutive transactions of one client
            # land on different server connections, as behind a busy production pooler
            "default_pool_size = 3\nreserve_pool_size = 0\nmax_client_conn = 500\n"
            "server_reset_query =\nignore_startup_parameters = extra_float_digits\n"
        )
        return ini

    def __enter__(self) -> PgBouncer:
        ini = self._config()
        command = [shutil.which("pgbouncer") or "pgbouncer", str(ini)]
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres")
            for path in self._dir.iterdir():
                shutil.chown(path, "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        log = self._dir / "pgbouncer.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {log.read_text()[-800:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not start listening")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


@asynccontextmanager
async def fresh_database(postgres_url: str, bouncer_url: str) -> AsyncIterator[str]:
    """A new database created directly on PostgreSQL; yields its URL through the bouncer."""
    name = f"pgb_{secrets.token_hex(6)}"
    admin = create_async_engine(async_url(postgres_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"{bouncer_url}/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
