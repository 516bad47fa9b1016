"""A private, throw-away PostgreSQL cluster on 127.0.0.1 for integration tests.

Uses the Debian server binaries (``/usr/lib/postgresql/<v>/bin``). ``initdb`` refuses to run as root,
so as root the cluster is created and run as the ``postgres`` system user the Debian package creates.
Password authentication (scram) is on, so tests exercise credentials from environment variables.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise PostgresUnavailable(f"PostgreSQL's {name} not found; run `make test` (installs Debian's postgresql)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    port: int
    user: str
    password: str
    database: str
    data_dir: str
    run_as: str | None

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{self.database}"

    def psql(self, sql: str) -> str:
        """Runs SQL with the psql client, as an analyst would; returns unaligned, tuples-only output."""
        env = {**os.environ, "PGPASSWORD": self.password}
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", self.database,
             "-v", "ON_ERROR_STOP=1", "-A", "-t", "-F", "|", "-c", sql],
            capture_output=True, text=True, env=env, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def start(self) -> None:
        self._ctl("start", "-w", "-t", "60", "-l", f"{self.data_dir}/server.log",
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c fsync=off")

    def _ctl(self, *args: str) -> None:
        _run([_bin("pg_ctl"), "-D", f"{self.data_dir}/db", *args], self.run_as)


def _run(cmd: list[str], run_as: str | None) -> None:
    full = ["runuser", "-u", run_as, "--", *cmd] if run_as else cmd
    result = subprocess.run(full, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(cmd[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")


def start_postgres(user: str = "cdp_test", password: str = "s3cret-Test-Pw",
                   database: str = "warehouse") -> PostgresServer:
    run_as = None
    base = tempfile.mkdtemp(prefix="cdp-pg-")
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and no 'postgres' user exists to run the server") from None
        run_as = "postgres"
        os.chown(base, pw.pw_uid, pw.pw_gid)
    os.chmod(base, 0o700)
    pwfile = Path(base) / "pw"
    pwfile.write_text(password)
    if run_as:
        pw = pwd.getpwnam(run_as)
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    _run([_bin("initdb"), "-D", f"{base}/db", "-U", user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
          "-E", "UTF8", "--locale=C.UTF-8"], run_as)
    pwfile.unlink()
    server = PostgresServer(_free_port(), user, password, database, base, run_as)
    server.start()
    env = {**os.environ, "PGPASSWORD": password}
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", user, "-d", "postgres", "-c",
                    f"CREATE DATABASE {database}"], capture_output=True, check=True, env=env, timeout=60)
    return server
