"""Starting and measuring the processes of a benchmark run: nginx, the vault."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == parent:
                    found.append(int(entry.name))
                    frontier.append(int(entry.name))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and all its live descendants (the workers of `serve --workers`)."""
    total = cpu_seconds(pid)
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total


def tree_rss_mib(pid: int) -> float:
    total = rss_mib(pid)
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            total += rss_mib(child)
    return total


def rss_mib(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE / 2**20


def worker_pids(pid: int) -> list[int]:
    """The processes that serve requests: the spawned workers, or ``pid`` itself when alone."""
    workers = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
    return sorted(workers) or [pid]


def worker_rss_mib(pid: int) -> list[float]:
    """Resident memory of each worker (the supervisor and multiprocessing's tracker excluded)."""
    out = []
    for worker in worker_pids(pid):
        with contextlib.suppress(OSError):
            out.append(rss_mib(worker))
    return out


# Generous: on a machine shared with other work the vault can take a minute to start.
def wait_http(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  upstream origin {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{upstream_port};
    location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
  }}
  server {{
    listen 127.0.0.1:{proxy_port};
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer sk-static-benchmark-token";
    }}
  }}
}}
"""


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    upstream_port: int
    proxy_port: int
    workdir: Path

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_nginx(upstream_port: int, proxy_port: int) -> Nginx | None:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="vg-bench-nginx-"))
    conf = workdir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(dir=workdir, upstream_port=upstream_port, proxy_port=proxy_port)
    )
    proc = subprocess.Popen(
        [binary, "-p", str(workdir), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{upstream_port}/")
    return Nginx(proc, upstream_port, proxy_port, workdir)


def start_python_upstream(port: int) -> subprocess.Popen[bytes]:
    """A fallback upstream when nginx is missing: a bare ASGI app on uvicorn."""
    code = (
        "import uvicorn\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n        return\n"
        "    await send({'type': 'http.response.start', 'status': 200,"
        " 'headers': [(b'content-type', b'application/json')]})\n"
        "    await send({'type': 'http.response.body', 'body': b'{\"ok\":true}'})\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='error', access_log=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    wait_http(f"http://127.0.0.1:{port}/")
    return proc


@dataclass
class VaultProc:
    proc: subprocess.Popen[bytes]
    base_url: str
    admin_key: str
    app_key: str
    grant_id: str
    workdir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_vault(
    port: int,
    upstream_origin: str,
    database_url: str | None,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> VaultProc:
    workdir = Path(tempfile.mkdtemp(prefix="vg-bench-vault-"))
    env = {
        **os.environ,
        "VAULTGATE_DATA_DIR": str(workdir / "data"),
        "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8",
        "VAULTGATE_PORT": str(port),
        "VAULTGATE_WORKERS": str(workers),
        **(extra_env or {}),
    }
    if database_url:
        env["VAULTGATE_DATABASE_URL"] = database_url
    cli = [sys.executable, "-m", "vaultgate.cli"]
    init = json.loads(
        subprocess.run(
            [*cli, "init", "--json"], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    proc = subprocess.Popen([*cli, "serve"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
    except RuntimeError:
        proc.kill()
        raise
    admin = httpx.Client(
        base_url=base, trust_env=False, headers={"Authorization": f"Bearer {init['admin_key']}"}
    )
    app = admin.post("/v1/apps", json={"name": "bench"}).json()
    key = admin.post(f"/v1/apps/{app['id']}/keys", json={"name": "bench"}).json()["api_key"]
    secret = admin.post(
        "/v1/secrets",
        json={
            "app_id": app["id"],
            "name": "upstream",
            "credential_type": "bearer",
            "credential": {"token": "sk-benchmark-secret"},
            "allowed_hosts": [upstream_origin],
            # Policy checks on: every request passes through decide() and the rate limiter.
            "policy": {
                "allowed_methods": ["GET", "POST"],
                "allowed_paths": ["/**"],
                "rate_limit": {"requests": 10_000_000, "per_seconds": 1},
            },
        },
    ).json()
    admin.close()
    return VaultProc(proc, base, init["admin_key"], key, secret["grant_id"], workdir)


def start_bare(
    port: int, upstream_origin: str, workers: int
) -> tuple[subprocess.Popen[bytes], Path]:
    """Row (h)'s bare Python proxy (bench/bare.py), on its own SQLite file."""
    workdir = Path(tempfile.mkdtemp(prefix="vg-bench-bare-"))
    database = str(workdir / "audit.db")
    cmd = [sys.executable, "-m", "bench.bare", str(port), upstream_origin, database, str(workers)]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
    except RuntimeError:
        proc.kill()
        raise
    return proc, workdir


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
