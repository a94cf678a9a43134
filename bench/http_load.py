"""Load on `POST /v1/events` from a second process, beside a bare ASGI hello-world.

    python bench/http_load.py                      # 4,000 requests, 8 connections, each server
    python bench/http_load.py --count 500 --json   # smaller; JSON for scripts

Both servers run under uvicorn in processes of their own, on loopback, with the same
settings: `adaptive-runtime serve` on a fresh SQLite journal (at durability full, then
normal), and a Litestar app whose one route decodes the same body and answers
`{"ok": true}`. The client is a third process: asyncio, keep-alive HTTP/1.1 connections,
a bounded count of requests, each event with its own id. It reports requests/s and
p50/p99 latency; the ratio is the runtime's requests/s over the hello-world's. Then
`/metrics` is checked against what was sent: one journaled event and one decision per
request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "loadtest" + "0123456789abcdef"
EVENTS = [
    {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88},
    {"type": "timeout", "severity": 0.45, "latency_ms": 4200},
    {"type": "auth_failure", "severity": 0.55},
    {"type": "anomaly_detected", "severity": 0.3},
]


# -- the client (a process of its own) ---------------------------------------------------


async def _connection(
    port: int, path: str, bodies: list[bytes], latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\n"
    )
    try:
        for body in bodies:
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _load(port: int, path: str, count: int, concurrency: int, tag: str) -> dict[str, Any]:
    bodies = [
        json.dumps({**EVENTS[i % 4], "id": f"{tag}-{i}", "agent_id": f"svc-{i % 16:02d}"}).encode()
        for i in range(count)
    ]
    shares = [bodies[k::concurrency] for k in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, path, s, latencies, statuses) for s in shares))
    seconds = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "seconds": round(seconds, 3),
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(cuts[49] * 1000, 3),
        "p99_ms": round(cuts[98] * 1000, 3),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def client_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--tag", required=True)
    args = p.parse_args(argv)
    result = asyncio.run(_load(args.port, "/v1/events", args.count, args.concurrency, args.tag))
    print(json.dumps(result))
    return 0


# -- the servers and the run --------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], path: str, timeout: float = 30) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the server did not start")


def _client(port: int, count: int, concurrency: int, tag: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "client",
            "--port",
            str(port),
            "--count",
            str(count),
            "--concurrency",
            str(concurrency),
            "--tag",
            tag,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _metric(port: int, name: str) -> float:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = conn.getresponse().read().decode()
    total = 0.0
    for line in text.splitlines():
        if re.match(rf"^{re.escape(name)}(\{{|\s)", line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run_servers(count: int, concurrency: int, durabilities: list[str]) -> dict[str, Any]:
    """Hello-world, then the runtime at each durability; each beside the hello-world's rate."""
    env = {**os.environ, "ADAPTIVE_RUNTIME_TOKENS": f"read,write {TOKEN}"}
    results: dict[str, Any] = {"count": count, "concurrency": concurrency}
    port = _free_port()
    hello = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "hello_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-server-header",
        ],
        cwd=HERE,
        env=env,
    )
    try:
        _wait_ready(port, hello, "/healthz")
        results["hello"] = _client(port, count, concurrency, "hello")
    finally:
        hello.terminate()
        hello.wait(30)
    with tempfile.TemporaryDirectory() as tmp:
        for durability in durabilities:
            port = _free_port()
            db = Path(tmp) / f"load-{durability}.db"
            serve = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "adaptive_runtime",
                    "serve",
                    "--db",
                    str(db),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                    "--durability",
                    durability,
                ],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_ready(port, serve, "/readyz")
                result = _client(port, count, concurrency, durability)
                result["ratio"] = round(result["rps"] / results["hello"]["rps"], 3)
                result["metrics"] = {
                    "events": _metric(port, "adaptive_runtime_events_total"),
                    "decisions": _metric(port, "adaptive_runtime_decisions_total"),
                    "process_count": _metric(
                        port, 'adaptive_runtime_process_seconds_count{route="events"}'
                    ),
                }
                results[durability] = result
            finally:
                serve.terminate()
                results[f"{durability}_exit"] = serve.wait(60)
    return results


def main(argv: list[str]) -> int:
    if argv[:1] == ["client"]:
        return client_main(argv[1:])
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--count", type=int, default=4000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--durability", action="append", choices=["full", "normal"])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = run_servers(args.count, args.concurrency, args.durability or ["full", "normal"])
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    hello = results["hello"]
    print(f"{args.count} requests, {args.concurrency} connections, loopback")
    print(f"{'server':28s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'ratio':>6s}")
    print(
        f"{'hello-world (Litestar)':28s} {hello['rps']:9.1f} {hello['p50_ms']:8.2f} {hello['p99_ms']:8.2f}"
    )
    for d in args.durability or ["full", "normal"]:
        r = results[d]
        print(
            f"{'serve, durability ' + d:28s} {r['rps']:9.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['ratio']:6.3f}"
            f"   metrics: {r['metrics']['events']:.0f} events, {r['metrics']['decisions']:.0f} decisions"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
