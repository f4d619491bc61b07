"""The load generators: wrk for closed loops (C connections, each sends when its answer came), oha for open loops
(requests at a fixed arrival rate whatever the latency, so a slow server cannot slow the offered load).

Both are native programs that need a few per cent of a core at these rates, so the servers keep the machine's
cores; a Python generator would take a core of its own on a 2-core machine and measure itself. Every request is
one text, drawn from the benchmark's real quotations in turn.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing Debian's package (apt-get install wrk)", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed; install it and run again")


def ensure_oha() -> str:
    found = shutil.which("oha") or shutil.which(str(Path.home() / ".cargo" / "bin" / "oha"))
    if found:
        return found
    if not shutil.which("cargo"):
        sys.exit("oha not found and no cargo to build it: install Rust (rustup), then `cargo install --locked oha`")
    print("oha not found: building it from crates.io (cargo install --locked oha; a few minutes, once)", flush=True)
    subprocess.run(["cargo", "install", "--locked", "oha"], check=True)
    return shutil.which(str(Path.home() / ".cargo" / "bin" / "oha")) or sys.exit("oha could not be installed")


def request_bodies(texts: list[str], folder: Path) -> tuple[Path, Path]:
    """A wrk Lua script cycling through `texts`, and a file of one JSON body per line for oha."""
    bodies = [json.dumps({"inputs": text}) for text in texts]
    lua = folder / "bodies.lua"
    quoted = ",\n".join("[==[" + body + "]==]" for body in bodies)
    lua.write_text(
        f'local bodies = {{\n{quoted}\n}}\nlocal counter = 0\nwrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  counter = counter + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])\nend\n"
    )
    lines = folder / "bodies.jsonl"
    lines.write_text("\n".join(bodies) + "\n")
    return lua, lines


def run_wrk(wrk: str, url: str, lua: Path, connections: int, seconds: float) -> dict:
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency", "-s", str(lua), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    if total == 0:  # nothing answered within the run: its whole length is a lower bound on the latency
        return {"rps": 0.0, "p50_ms": seconds * 1000.0, "p99_ms": seconds * 1000.0, "requests": 0, "errors": 0}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1)),
        "requests": total,
        "errors": (int(failed.group(1)) if failed else 0) + socket_errors,
    }


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_oha(oha: str, url: str, bodies: Path, rate: float, seconds: float, connections: int = 256) -> dict:
    """Requests at `rate` per second for `seconds`; latency counted from each request's scheduled send time
    (--latency-correction), so a queue that forms in the server or the client shows up in the percentiles; requests
    still in flight at the end are waited for (-w), not counted as errors."""
    command = [
        oha, url, "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-q", str(rate),
        "--latency-correction", "-w", "-c", str(connections), "-t", "30s", "-m", "POST",
        "-H", "Content-Type: application/json", "-Z", str(bodies),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    statuses = report.get("statusCodeDistribution", {})
    ok = sum(n for code, n in statuses.items() if code.startswith("2"))
    errors = sum(n for code, n in statuses.items() if not code.startswith("2"))
    errors += sum(report.get("errorDistribution", {}).values())
    percentiles = report["latencyPercentiles"]
    return {
        "rate": rate,
        "achieved_rps": ok / seconds,
        "p50_ms": (percentiles.get("p50") or 0) * 1000,
        "p99_ms": (percentiles.get("p99") or float("inf")) * 1000,
        "requests": ok + errors,
        "errors": errors,
    }
