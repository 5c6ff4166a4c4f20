"""``python -m bench``: measure the vault against a direct call and nginx, print and save a table.

Every row runs ``--reps`` times (default 3), interleaved (a b c d e f, a b c d e f, ...) so a
noisy neighbour hits every row alike; the table shows medians and the ratios to nginx's
injecting proxy (f) measured in the same run. BENCH_SECONDS shortens or lengthens each
measurement (default 10); ``--postgres URL`` runs the vault on PostgreSQL instead of SQLite.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import durability, load, procs, report
from bench.bare import BARE_KEY
from bench.load import Result
from bench.report import Row, Sample
from bench.sdkload import SdkLoad, run_sdk

MEMORY_MARKS = (20_000, 200_000)


@dataclass
class Spec:
    """One row: how to load it at a concurrency, and whose CPU it costs (None: nobody's)."""

    name: str
    run: Callable[[int, int], Result]  # (connections, seconds) -> Result
    pid: int | None


def _client_cpu() -> float:
    """CPU of the reaped children of this process: wrk, or the SDK's load processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sample(spec: Spec, connections: int, secs: int) -> Sample:
    before = procs.tree_cpu_seconds(spec.pid) if spec.pid else 0.0
    client_before = _client_cpu()
    result = spec.run(connections, secs)
    per_request = 1e6 / result.requests if result.requests else 0.0
    cpu = (procs.tree_cpu_seconds(spec.pid) - before) * per_request if spec.pid else None
    spent = result.client_cpu_seconds
    client = (_client_cpu() - client_before if spent is None else spent) * per_request
    print(
        f"  {spec.name:<28} c={connections:<3} {result.rps:>9.0f} req/s  p50 "
        f"{result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
        + (f"  reports lost {result.lost_reports}" if result.lost_reports else ""),
        flush=True,
    )
    return Sample(result, cpu, client)


def _specs(
    vault: procs.VaultProc,
    origin: str,
    nginx: procs.Nginx | None,
    sdk_procs: int,
    traced: procs.VaultProc | None = None,
    bare: tuple[int, int] | None = None,
) -> list[Spec]:
    auth = {"Authorization": f"Bearer {vault.app_key}"}
    proxy_url = f"{vault.base_url}/proxy/{vault.grant_id}/"
    token_body: dict[str, object] = {
        "grant_id": vault.grant_id,
        "reason": "bench",
        "request": {"method": "GET", "url": origin + "/"},
    }
    proxy_body: dict[str, object] = {
        "method": "GET",
        "url": origin + "/",
        "grant_id": vault.grant_id,
        "reason": "bench",
    }

    def signed(path: str, body: dict[str, object]) -> Callable[[int, int], Result]:
        def run(c: int, secs: int) -> Result:
            # Fresh nonces for every measurement: the vault refuses a replayed one.
            script = load.signed_script(
                path, body, vault.app_key, count=20_000 * secs, threads=1 if c == 1 else 2
            )
            return load.run_wrk(vault.base_url + path, connections=c, seconds=secs, script=script)

        return run

    sdk = SdkLoad(vault.base_url, vault.app_key, origin + "/", vault.grant_id)
    sync_sdk = SdkLoad(vault.base_url, vault.app_key, origin + "/", vault.grant_id, sync=True)
    bare_sdk = SdkLoad(vault.base_url, vault.app_key, origin + "/", vault.grant_id, bare=True)
    specs = [
        Spec(
            "(a) upstream direct",
            lambda c, s: load.run_wrk(origin + "/", connections=c, seconds=s),
            None,
        ),
        Spec(
            "(b) transparent proxy",
            lambda c, s: load.run_wrk(proxy_url, connections=c, seconds=s, headers=auth),
            vault.pid,
        ),
        Spec("(c) POST /sdk/proxy", signed("/sdk/proxy", proxy_body), vault.pid),
        Spec("(d) POST /sdk/token", signed("/sdk/token", token_body), vault.pid),
        Spec(
            "(e) vault.request() (SDK)",
            lambda c, s: run_sdk(sdk, connections=c, seconds=s, processes=sdk_procs),
            vault.pid,
        ),
        Spec(
            "(s) SyncVault.request() (SDK)",
            lambda c, s: run_sdk(sync_sdk, connections=c, seconds=s, processes=sdk_procs),
            vault.pid,
        ),
        Spec(
            "(j) bare Python client",
            lambda c, s: run_sdk(bare_sdk, connections=c, seconds=s, processes=sdk_procs),
            vault.pid,
        ),
    ]
    if traced is not None:
        # The same vault with traces exported over OTLP (to a collector that answers 200):
        # its ratio to (b) is what tracing costs when on. Metrics are always on in every row.
        traced_url = f"{traced.base_url}/proxy/{traced.grant_id}/"
        traced_auth = {"Authorization": f"Bearer {traced.app_key}"}
        specs.append(
            Spec(
                "(g) transparent proxy, traced",
                lambda c, s: load.run_wrk(
                    traced_url, connections=c, seconds=s, headers=traced_auth
                ),
                traced.pid,
            )
        )
    if bare is not None:
        # The floor (bench/bare.py): the least a Python proxy must do, served as the vault is.
        bare_pid, bare_port = bare
        bare_url = f"http://127.0.0.1:{bare_port}/proxy/bench/"
        bare_auth = {"Authorization": f"Bearer {BARE_KEY}"}
        specs.append(
            Spec(
                "(h) bare Python proxy",
                lambda c, s: load.run_wrk(bare_url, connections=c, seconds=s, headers=bare_auth),
                bare_pid,
            )
        )
        specs.append(
            Spec(
                "(i) bare Python /sdk/token",
                lambda c, s: _bare_token(bare_port, origin, c, s),
                bare_pid,
            )
        )
    if nginx:
        url = f"http://127.0.0.1:{nginx.proxy_port}/"
        specs.append(
            Spec(
                "(f) nginx adding a header",
                lambda c, s: load.run_wrk(url, connections=c, seconds=s),
                nginx.proc.pid,
            )
        )
    return specs


def _bare_token(port: int, origin: str, c: int, secs: int) -> Result:
    body = {"grant_id": "bench", "reason": "bench", "request": {"method": "GET", "url": origin}}
    base = f"http://127.0.0.1:{port}"
    script = load.signed_script(
        "/sdk/token", body, BARE_KEY, count=20_000 * secs, threads=1 if c == 1 else 2
    )
    return load.run_wrk(base + "/sdk/token", connections=c, seconds=secs, script=script)


def _run_all(specs: list[Spec], vault_pid: int, secs: int, reps: int) -> list[Row]:
    rows: list[Row] = []
    for c in (1, 32):
        print(f"concurrency {c}:", flush=True)
        samples: dict[str, list[Sample]] = {spec.name: [] for spec in specs}
        for rep in range(reps):
            print(f" repetition {rep + 1} of {reps}", flush=True)
            for spec in specs:
                samples[spec.name].append(_sample(spec, c, secs))
        for spec in specs:
            rss = procs.worker_rss_mib(spec.pid) if spec.pid == vault_pid else None
            rows.append(Row(spec.name, c, samples[spec.name], rss))
    return rows


def _memory(vault: procs.VaultProc, secs: int) -> list[tuple[int, list[float]]]:
    """Each worker's resident memory after 20,000 and after 200,000 proxied requests."""
    auth = {"Authorization": f"Bearer {vault.app_key}"}
    url = f"{vault.base_url}/proxy/{vault.grant_id}/"
    out = []
    done = 0
    for target in MEMORY_MARKS:
        while done < target:
            result = load.run_wrk(url, connections=32, seconds=max(2, secs // 2), headers=auth)
            done += result.requests
        out.append((done, procs.worker_rss_mib(vault.pid)))
    return out


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--postgres", metavar="URL", default=None)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "3")))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BENCH_WORKERS", "2")),
        help="vault worker processes (default 2, one per core here)",
    )
    parser.add_argument(
        "--sdk-processes",
        type=int,
        default=int(os.environ.get("BENCH_SDK_PROCESSES", "4")),
        help="processes generating row (e) (default 4; one process is client-bound)",
    )
    parser.add_argument(
        "--no-traces",
        dest="traces",
        action="store_false",
        help="skip row (g), a second vault exporting traces (what tracing costs when on)",
    )
    parser.add_argument(
        "--rows",
        default=os.environ.get("BENCH_ROWS", ""),
        help="only these rows, by letter (e.g. d,e); default all, and the memory marks",
    )
    return parser.parse_args()


def _chosen(specs: list[Spec], rows: str) -> list[Spec]:
    letters = {r.strip().strip("()") for r in rows.split(",") if r.strip()}
    return [s for s in specs if not letters or s.name[1:2] in letters]


def main() -> None:
    args = _arguments()
    if not load.wrk_available():
        sys.exit("wrk is not installed (apt-get install wrk); make bench installs it where it can")
    up_port, ng_port, vault_port = (procs.free_port() for _ in range(3))
    nginx = procs.start_nginx(up_port, ng_port)
    fallback = None if nginx else procs.start_python_upstream(up_port)
    origin = f"http://127.0.0.1:{up_port}"
    try:
        vault = procs.start_vault(vault_port, origin, args.postgres, args.workers)
    except BaseException:
        if nginx:
            nginx.stop()
        if fallback:
            fallback.terminate()
        raise
    collector = traced = None
    if args.traces and (not args.rows or "g" in args.rows):
        collector_port, traced_port = procs.free_port(), procs.free_port()
        collector = procs.start_python_upstream(collector_port)
        endpoint = f"http://127.0.0.1:{collector_port}/v1/traces"
        traced = procs.start_vault(
            traced_port,
            origin,
            None,
            args.workers,
            extra_env={"VAULTGATE_OTLP_ENDPOINT": endpoint},
        )
    bare = None
    if not args.rows or "h" in args.rows or "i" in args.rows:
        bare_port = procs.free_port()
        bare = (*procs.start_bare(bare_port, origin, args.workers), bare_port)
    load_before = os.getloadavg()
    try:
        bare_spec = (bare[0].pid, bare[2]) if bare else None
        specs = _specs(vault, origin, nginx, args.sdk_processes, traced, bare_spec)
        specs = _chosen(specs, args.rows)
        rows = _run_all(specs, vault.pid, args.seconds, args.reps)
        memory = [] if args.rows else _memory(vault, args.seconds)
        supervisor = procs.rss_mib(vault.pid) if args.workers > 1 else None
    finally:
        vault.stop()
        if traced is not None:
            traced.stop()
        if collector is not None:
            collector.terminate()
        if bare is not None:
            bare[0].terminate()
            bare[0].wait(timeout=20)
            shutil.rmtree(bare[1], ignore_errors=True)
        if nginx:
            nginx.stop()
        if fallback:
            fallback.terminate()
    context = report.Context(args, nginx is not None, load_before, os.getloadavg(), supervisor)
    text = report.render(rows, memory, context)
    text += "\n" + durability.render(durability.run()) + "\n"
    print("\n" + text)
    report.RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report.RESULTS.write_text(text)
    print(f"written to {report.RESULTS} at {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
