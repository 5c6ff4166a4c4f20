"""``python -m bench``: measure the vault against a direct call and nginx, print and save a table.

BENCH_SECONDS shortens or lengthens each measurement (default 10); ``--postgres URL`` runs the
vault on PostgreSQL instead of SQLite.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import load, procs
from bench.load import Result

RESULTS = Path(__file__).parent / "results" / "latest.md"


@dataclass
class Row:
    name: str
    connections: int
    result: Result
    cpu_per_req_us: float | None
    rss_mib: float | None


def _measure(name: str, connections: int, pid: int | None, run: object) -> Row:
    before = procs.tree_cpu_seconds(pid) if pid else 0.0
    result: Result = run()  # type: ignore[operator]
    cpu = (
        (procs.tree_cpu_seconds(pid) - before) / result.requests * 1e6
        if pid and result.requests
        else None
    )
    rss = procs.tree_rss_mib(pid) if pid else None
    print(
        f"  {name:<28} c={connections:<3} {result.rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms"
        f"  p99 {result.p99_ms:6.2f} ms  errors {result.errors}",
        flush=True,
    )
    return Row(name, connections, result, cpu, rss)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--postgres", metavar="URL", default=None)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BENCH_WORKERS", "2")),
        help="vault worker processes (default 2, one per core here)",
    )
    args = parser.parse_args()
    if not load.wrk_available():
        sys.exit("wrk is not installed (apt-get install wrk); make bench installs it where it can")
    secs = args.seconds
    up_port, ng_port, vault_port = (procs_free_port() for _ in range(3))
    nginx = procs.start_nginx(up_port, ng_port)
    fallback = None if nginx else procs.start_python_upstream(up_port)
    origin = f"http://127.0.0.1:{up_port}"
    vault = procs.start_vault(vault_port, origin, args.postgres, args.workers)
    rows: list[Row] = []
    try:
        rows = _run_all(vault, origin, nginx, secs)
        rows += _memory(vault, secs)
    finally:
        vault.stop()
        if nginx:
            nginx.stop()
        if fallback:
            fallback.terminate()
    report = render(rows, args, nginx is not None)
    print("\n" + report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(f"written to {RESULTS}")


def procs_free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_all(
    vault: procs.VaultProc, origin: str, nginx: procs.Nginx | None, secs: int
) -> list[Row]:
    rows: list[Row] = []
    auth = {"Authorization": f"Bearer {vault.app_key}"}
    proxy_url = f"{vault.base_url}/proxy/{vault.grant_id}/"
    token_body = {
        "grant_id": vault.grant_id,
        "reason": "bench",
        "request": {"method": "GET", "url": origin + "/"},
    }
    proxy_body = {
        "method": "GET",
        "url": origin + "/",
        "grant_id": vault.grant_id,
        "reason": "bench",
    }
    for c in (1, 32):
        print(f"concurrency {c}:", flush=True)
        rows.append(
            _measure(
                "(a) upstream direct",
                c,
                None,
                lambda c=c: load.run_wrk(origin + "/", connections=c, seconds=secs),
            )
        )
        rows.append(
            _measure(
                "(b) transparent proxy",
                c,
                vault.pid,
                lambda c=c: load.run_wrk(proxy_url, connections=c, seconds=secs, headers=auth),
            )
        )
        for label, path, body in (
            ("(c) POST /sdk/proxy", "/sdk/proxy", proxy_body),
            ("(d) POST /sdk/token", "/sdk/token", token_body),
        ):
            threads = 1 if c == 1 else 2
            script = load.signed_script(
                path, body, vault.app_key, count=30_000 * secs, threads=threads
            )
            rows.append(
                _measure(
                    label,
                    c,
                    vault.pid,
                    lambda c=c, path=path, script=script: load.run_wrk(
                        vault.base_url + path, connections=c, seconds=secs, script=script
                    ),
                )
            )
        rows.append(
            _measure(
                "(e) vault.request() (SDK)",
                c,
                vault.pid,
                lambda c=c: load.run_sdk(
                    vault.base_url,
                    vault.app_key,
                    origin + "/",
                    vault.grant_id,
                    connections=c,
                    seconds=secs,
                ),
            )
        )
        if nginx:
            rows.append(
                _measure(
                    "(f) nginx adding a header",
                    c,
                    nginx.proc.pid,
                    lambda c=c: load.run_wrk(
                        f"http://127.0.0.1:{nginx.proxy_port}/", connections=c, seconds=secs
                    ),
                )
            )
    return rows


def _memory(vault: procs.VaultProc, secs: int) -> list[Row]:
    """Resident memory after 20,000 and after 200,000 proxied requests (leak check)."""
    auth = {"Authorization": f"Bearer {vault.app_key}"}
    url = f"{vault.base_url}/proxy/{vault.grant_id}/"
    out = []
    done = 0
    for target in (20_000, 200_000):
        while done < target:
            result = load.run_wrk(url, connections=32, seconds=max(2, secs // 2), headers=auth)
            done += result.requests
        out.append(
            Row(
                f"memory after {target:,} proxied",
                32,
                Result(done, 1, 0, 0, 0),
                None,
                procs.tree_rss_mib(vault.pid),
            )
        )
    return out


def _find(rows: list[Row], prefix: str, c: int) -> Row | None:
    return next((r for r in rows if r.name.startswith(prefix) and r.connections == c), None)


def render(rows: list[Row], args: argparse.Namespace, have_nginx: bool) -> str:
    lines = [
        "# vaultgate benchmark",
        "",
        f"- when: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        f"- python {platform.python_version()}; wrk {_wrk_version()}; "
        f"nginx {'yes' if have_nginx else 'absent'}",
        f"- vault: `vaultgate serve --workers {args.workers}` (uvicorn, uvloop, httptools)",
        f"- database: {'PostgreSQL' if args.postgres else 'SQLite (WAL)'}; policy checks and "
        "durable "
        f"audit on; {args.seconds} s per measurement; upstream: "
        f"{'nginx static' if have_nginx else 'uvicorn hello'} on loopback",
        "",
        "| path | conc. | req/s | p50 ms | p99 ms | errors | CPU us/req | RSS MiB | vs (a) "
        "| vs (f) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row.name.startswith("memory"):
            continue
        base = _find(rows, "(a)", row.connections)
        ngx = _find(rows, "(f)", row.connections)
        r = row.result
        lines.append(
            f"| {row.name} | {row.connections} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.errors} | {_opt(row.cpu_per_req_us, '.0f')} | {_opt(row.rss_mib, '.0f')} | "
            f"{_ratio(r.rps, base)} | {_ratio(r.rps, ngx)} |"
        )
    lines += ["", "| memory | RSS MiB |", "| --- | ---: |"]
    lines += [f"| {r.name} | {r.rss_mib:.1f} |" for r in rows if r.name.startswith("memory")]
    lines += ["", "## goals", "", *_goals(rows)]
    return "\n".join(lines) + "\n"


def _goals(rows: list[Row]) -> list[str]:
    out = []
    b32, f32 = _find(rows, "(b)", 32), _find(rows, "(f)", 32)
    if b32 and f32:
        share = b32.result.rps / f32.result.rps
        out.append(f"- (b) at c=32 is {share:.0%} of (f) (goal >= 25%): {_ok(share >= 0.25)}")
    d32 = _find(rows, "(d)", 32)
    if d32:
        out.append(
            f"- (d) at c=32: {d32.result.rps:,.0f} req/s (goal >= 8,000): "
            f"{_ok(d32.result.rps >= 8000)}"
        )
    a1, b1 = _find(rows, "(a)", 1), _find(rows, "(b)", 1)
    if a1 and b1:
        extra = b1.result.p50_ms - a1.result.p50_ms
        out.append(
            f"- (b) adds {extra:.2f} ms at p50 over (a) at c=1 (goal <= 1 ms): {_ok(extra <= 1.0)}"
        )
    mem = [r for r in rows if r.name.startswith("memory")]
    if len(mem) == 2 and mem[0].rss_mib and mem[1].rss_mib:
        growth = mem[1].rss_mib / mem[0].rss_mib - 1
        out.append(
            f"- RSS growth from 20k to 200k requests: {growth:+.1%} (goal within 10%): "
            f"{_ok(abs(growth) <= 0.10)}"
        )
    return out


def _ok(flag: bool) -> str:
    return "met" if flag else "NOT met"


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(rps: float, base: Row | None) -> str:
    if base is None or not base.result.rps:
        return "-"
    return f"{rps / base.result.rps:.0%}"


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if out.split() else "?"


if __name__ == "__main__":
    main()
