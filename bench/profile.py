"""Where a worker's time goes on one hot route: ``python -m bench.profile [--path token]``.

Starts nginx (the upstream) and a one-worker vault as ``make bench`` does, drives the transparent
proxy (or ``/sdk/token``, or ``report``: the SDK's outcome report) with wrk at concurrency 32
(or ``--connections``), and samples the worker with py-spy while it runs: first every thread's
CPU per request (from /proc), then the share of the GIL-holding samples by library and by
vaultgate module (``--keep FILE`` saves the raw samples). py-spy is a profiler, not a
dependency: ``pip install py-spy`` into the venv first (it needs ptrace, which root has here).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import load, procs

_FRAME = re.compile(r"\((.*?):\d+\)")


def _component(frame: str) -> str:
    found = _FRAME.search(frame)
    if found is None:
        return "(native or idle)"
    path = found.group(1)
    if path.startswith("vaultgate/"):
        return path
    return path.split("/")[0]


def _shares(raw: Path) -> tuple[collections.Counter[str], int]:
    by_component: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        by_component[_component(stack.split(";")[-1])] += int(count)
    return by_component, total


def _thread_cpu(pid: int) -> dict[str, float]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / procs.CLK_TCK
    return out


def _thread_names(spy: str, pid: int) -> dict[str, str]:
    dump = subprocess.run([spy, "dump", "-p", str(pid)], capture_output=True, text=True).stdout
    return {m.group(1): m.group(2) for m in re.finditer(r'Thread (\S+) \(\w+\): "([^"]+)"', dump)}


def _signed_route(name: str, grant_id: str, origin: str) -> tuple[str, dict[str, object]]:
    """The path and body of a signed SDK call: a token fetch, or the report ``request()``
    sends after it (as ``SyncVault`` and ``AlterVault`` build it for row (e)'s calls)."""
    if name == "token":
        request = {"method": "GET", "url": origin + "/"}
        return "/sdk/token", {"grant_id": grant_id, "reason": "profile", "request": request}
    return "/sdk/oauth/audit/api-call", {
        "grant_id": grant_id,
        "provider_id": "upstream",
        "token_generation": None,
        "method": "GET",
        "url": origin + "/",
        "request_headers": {"user-agent": "vaultgate-python/0.1", "host": origin[7:]},
        "request_body": None,
        "response_status": 200,
        "response_headers": {"content-type": "application/json", "content-length": "11"},
        "response_body": "ok",  # no backslash: the wrk script's Lua string would eat it
        "latency_ms": 1,
        "reason": "profile",
        "context": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", choices=("proxy", "token", "report"), default="proxy")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="also save py-spy's raw samples here")
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if spy is None or not shutil.which("wrk"):
        sys.exit("needs py-spy (pip install py-spy) and wrk")
    upstream_port, proxy_port = procs.free_port(), procs.free_port()
    nginx = procs.start_nginx(upstream_port, proxy_port)
    if nginx is None:
        sys.exit("needs nginx as the upstream")
    origin = f"http://127.0.0.1:{upstream_port}"
    vault = procs.start_vault(procs.free_port(), origin, None, workers=1)
    raw = Path(tempfile.mkdtemp(prefix="vg-profile-")) / "samples.txt"
    try:
        if args.path == "proxy":
            url = f"{vault.base_url}/proxy/{vault.grant_id}/"
            headers = {"Authorization": f"Bearer {vault.app_key}"}

            def run(secs: int) -> load.Result:
                return load.run_wrk(
                    url, connections=args.connections, seconds=secs, headers=headers
                )
        else:
            path, body = _signed_route(args.path, vault.grant_id, origin)

            def run(secs: int) -> load.Result:
                # Fresh nonces for every run: the warm-up's would be refused as replays.
                script = load.signed_script(
                    path, body, vault.app_key, count=20_000 * secs, threads=min(2, args.connections)
                )
                return load.run_wrk(
                    vault.base_url + path, connections=args.connections, seconds=secs, script=script
                )

        run(2)  # warm: caches, pooled connections
        worker = procs.worker_pids(vault.pid)[0]
        names = {str(worker): "MainThread", **_thread_names(spy, worker)}
        before, started = _thread_cpu(worker), time.monotonic()
        sampler = subprocess.Popen(
            [spy, "record", "-r", "200", "-d", str(args.seconds), "-f", "raw", "-o", str(raw),
             "--gil", "--nonblocking", "-p", str(worker)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        result = run(args.seconds)
        after, elapsed = _thread_cpu(worker), time.monotonic() - started
        sampler.wait()
        requests = result.rps * elapsed
        print(
            f"{args.path} at c={args.connections}: {result.rps:,.0f} req/s, "
            f"{result.errors} errors, one worker"
        )
        total_cpu = sum(after[t] - before.get(t, 0.0) for t in after)
        print(f"worker CPU per request: {total_cpu / requests * 1e6:.0f} us, by thread:")
        for tid in sorted(after, key=lambda t: before.get(t, 0.0) - after[t]):
            spent = after[tid] - before.get(tid, 0.0)
            if spent > 0:
                print(f"  {names.get(tid, tid):24s} {spent / requests * 1e6:6.0f} us")
        if args.keep is not None:
            shutil.copyfile(raw, args.keep)
        shares, samples = _shares(raw)
        print(f"GIL-holding samples: {samples}; share by library / vaultgate module:")
        for name, count in shares.most_common(args.top):
            print(f"  {100 * count / samples:5.1f}%  {name}")
    finally:
        vault.stop()
        nginx.stop()
        shutil.rmtree(raw.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
