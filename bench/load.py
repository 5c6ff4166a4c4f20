"""The wrk load generator, with pre-signed requests for the Alter protocol (the SDK's own
generator is in ``sdkload``)."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vaultgate.injection.signing import sign_request


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    lost_reports: int = 0  # row (e): outcome reports dropped or refused (0 when all landed)
    # Row (e): the SDK processes' own CPU inside the measured time (their start-up excluded).
    client_cpu_seconds: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unreadable latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str, seconds: float) -> Result:
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    duration = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    return Result(total, duration or seconds, p50, p99, errors)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: int,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> Result:
    threads = 1 if connections == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out, seconds)


LUA = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local reqs = {}
local i = 0
function init(args)
  local path = "%(prefix)s" .. id
  for line in io.lines(path) do
    local ts, nonce, sig = line:match("(%%S+) (%%S+) (%%S+)")
    reqs[#reqs + 1] = wrk.format("POST", "%(path)s", {
      ["Content-Type"] = "application/json",
      ["x-api-key"] = "%(key)s",
      ["X-Alter-Timestamp"] = ts,
      ["X-Alter-Nonce"] = nonce,
      ["X-Alter-Content-SHA256"] = "%(digest)s",
      ["X-Alter-Signature"] = sig,
    }, '%(body)s')
  end
end
function request()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
"""


def signed_script(
    path: str, body: dict[str, object], api_key: str, count: int, threads: int
) -> Path:
    """A wrk script replaying ``count`` distinct, freshly signed requests (nonces never repeat)."""
    import hashlib

    raw = json.dumps(body, separators=(",", ":"))
    digest = hashlib.sha256(raw.encode()).hexdigest()
    workdir = Path(tempfile.mkdtemp(prefix="vg-bench-lua-"))
    now = int(time.time())
    per_thread = count // threads + 1
    for t in range(threads):
        lines = []
        for _ in range(per_thread):
            nonce = secrets.token_hex(16)
            headers = sign_request(api_key, "POST", path, raw.encode(), now=now, nonce=nonce)
            lines.append(f"{now} {nonce} {headers['X-Alter-Signature']}")
        (workdir / f"signed{t}").write_text("\n".join(lines) + "\n")
    script = workdir / "signed.lua"
    script.write_text(
        LUA
        % {
            "prefix": str(workdir / "signed"),
            "path": path,
            "key": api_key,
            "digest": digest,
            "body": raw.replace("'", "\\'"),
        }
    )
    return script
