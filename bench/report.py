"""Run the benchmark suites and print each figure beside its baseline, ratio and target.

    python bench/report.py                 # run everything 5 times (1M-entry replay with --large)
    python bench/report.py --runs 1        # once: quicker, no spread
    python bench/report.py --from out.json # re-report pytest-benchmark JSON files

Each figure is the median of the runs (the run whose ratio, or value, is the median), and
`spread` is the lowest and highest value the runs gave, so a reader sees the noise.

Writes bench/results/summary.json (and ratios.png when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from memory import measure, measure_fleet  # noqa: E402


def machine() -> dict[str, str]:
    import apsw
    import msgspec

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": apsw.sqlite_lib_version(),
        "apsw": apsw.apsw_version(),
        "msgspec": msgspec.__version__,
    }


def run_suites(out: Path, large: bool, run: int = 1) -> Path:
    raw = out / f"pytest-benchmark-{run}.json"
    env = {**os.environ, **({"BENCH_LARGE": "1"} if large else {})}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(HERE),
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={raw}",
    ]
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    if subprocess.run(cmd, check=False, env=env, cwd=HERE.parent).returncode != 0:
        raise SystemExit("the benchmark suites failed (see above); no report was written")
    return raw


def medians(raw: Path) -> dict[str, tuple[float, dict[str, Any]]]:
    """Each benchmark's median and extra info, from a pytest-benchmark JSON file; a file
    that is none is a ValueError saying so."""
    try:
        data = json.loads(raw.read_text(encoding="utf-8"))
        return {b["name"]: (b["stats"]["median"], b["extra_info"]) for b in data["benchmarks"]}
    except OSError as exc:
        raise ValueError(f"can't read {raw}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        why = f"no {exc.args[0]!r} where one was expected" if isinstance(exc, KeyError) else exc
        msg = f"{raw} is not a pytest-benchmark JSON file (--benchmark-json writes one): {why}"
        raise ValueError(msg) from None


def rate(m: dict[str, tuple[float, dict[str, Any]]], name: str) -> float | None:
    if name not in m:
        return None
    seconds, info = m[name]
    return float(info.get("events", 1)) / seconds


def rows(
    m: dict[str, tuple[float, dict[str, Any]]], memory: dict[str, Any] | None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def ratio_row(
        what: str, ours: str, base: str, target: float | None, unit: str = "events/s"
    ) -> None:
        a, b = rate(m, ours), rate(m, base)
        if a is None or b is None:
            return
        ratio = a / b
        out.append(
            {
                "figure": what,
                "ours": round(a),
                "baseline": round(b),
                "unit": unit,
                "ratio": round(ratio, 3),
                "target": f">= {target}" if target is not None else "-",
                "met": None if target is None else ratio >= target,
            }
        )

    ratio_row(
        "process(), durability normal", "test_process[normal]", "test_raw_insert[normal]", 0.45
    )
    ratio_row("process(), durability full", "test_process[full]", "test_raw_insert[full]", 0.6)
    ratio_row(
        "process(), full, committing on the caller's thread",
        "test_process_full_on_caller",
        "test_raw_insert[full]",
        0.85,
    )
    for level in ("normal", "full"):
        ours, base = m.get(f"test_process[{level}]"), m.get(f"test_raw_insert[{level}]")
        if ours and base and "pages_per_commit" in ours[1]:
            out.append(
                {
                    "figure": f"WAL pages per commit, {level} (raw: event + decision rows)",
                    "ours": ours[1]["pages_per_commit"],
                    "baseline": base[1].get("pages_per_commit", "-"),
                    "unit": "pages",
                    "ratio": "-",
                    "target": "<= 1.5" if level == "normal" else "-",
                    "met": ours[1]["pages_per_commit"] <= 1.5 if level == "normal" else None,
                }
            )
            out.append(
                {
                    "figure": f"WAL checkpoints per 10,000 events, {level}",
                    "ours": ours[1]["checkpoints_per_10k"],
                    "baseline": "-",
                    "unit": "runs",
                    "ratio": "-",
                    "target": "-",
                    "met": None,
                }
            )
    ratio_row("process_many(64), full", "test_process_many_64", "test_raw_batches_of_64", 0.35)
    for producers in (1, 8, 64):
        target = 0.25 if producers == 64 else None
        ratio_row(
            f"group commit, {producers} producer(s), full",
            f"test_producers[{producers}]",
            "test_raw_batches_of_64",
            target,
        )
    ratio_row(
        "host: 1,000 agents, 64 producers, full",
        "test_host_1000_agents_64_producers",
        "test_raw_batches_of_64",
        None,
    )
    ratio_row("journal append alone, normal", "test_journal_append", "test_raw_append", None)
    ratio_row(
        "the runtime's parts alone (validate, decide, encode, append), normal",
        "test_runtime_parts_alone",
        "test_raw_append",
        None,
    )
    for agents in (10, 100):
        ratio_row(
            f"read one agent's 1,000 of {agents}k entries, {agents} agents (raw: an index)",
            f"test_journal_stream_read[{agents}agents]",
            f"test_raw_indexed_stream_read[{agents}agents]",
            None,
            "entries/s",
        )
    ratio_row(
        "replay 100k entries (decode + fold)",
        "test_replay_full[100k]",
        "test_raw_scan_decode_fold[100k]",
        0.5,
        "entries/s",
    )
    if "test_replay_full[1000k]" in m:
        ratio_row(
            "replay 1M entries (decode + fold)",
            "test_replay_full[1000k]",
            "test_raw_scan_decode_fold[1000k]",
            0.5,
            "entries/s",
        )
        seconds = m["test_replay_full[1000k]"][0]
        out.append(
            {
                "figure": "replay 1M entries, wall time",
                "ours": round(seconds, 2),
                "baseline": "-",
                "unit": "s",
                "ratio": "-",
                "target": "< 3 s",
                "met": seconds < 3,
            }
        )
    if "test_recovery_snapshot_plus_tail" in m:
        ms = m["test_recovery_snapshot_plus_tail"][0] * 1000
        out.append(
            {
                "figure": "recovery: snapshot + 1,000-entry tail",
                "ours": round(ms, 2),
                "baseline": "-",
                "unit": "ms",
                "ratio": "-",
                "target": "< 20 ms",
                "met": ms < 20,
            }
        )
    for name, what in (
        ("test_package_import", "import adaptive_runtime"),
        ("test_cold_import", "from adaptive_runtime import Runtime"),
    ):
        if name in m and "test_bare_interpreter" in m:
            extra = (m[name][0] - m["test_bare_interpreter"][0]) * 1000
            out.append(
                {
                    "figure": f"{what}, over a bare interpreter",
                    "ours": round(extra, 1),
                    "baseline": round(m["test_bare_interpreter"][0] * 1000, 1),
                    "unit": "ms",
                    "ratio": "-",
                    "target": "< 60 ms",
                    "met": extra < 60,
                }
            )
    if "test_cli_head_cold_start" in m and "test_bare_interpreter" in m:
        cli_ms = m["test_cli_head_cold_start"][0] * 1000
        out.append(
            {
                "figure": "CLI cold start: head on a small journal (baseline: python -c pass)",
                "ours": round(cli_ms, 1),
                "baseline": round(m["test_bare_interpreter"][0] * 1000, 1),
                "unit": "ms",
                "ratio": "-",
                "target": "-",
                "met": None,
            }
        )
    ratio_row(
        "peer: same workload vs eventsourcing (SQLite)",
        "test_adaptive_runtime_same_workload",
        "test_eventsourcing_sqlite",
        None,
    )
    pg_targets = {1: 0.5, 4: None, 16: None}
    for writers, target in pg_targets.items():
        ratio_row(
            f"PostgreSQL: process(), {writers} writer{'s' if writers > 1 else ''}, full",
            f"test_pg_process[{writers}]",
            f"test_pg_raw_per_commit[{writers}]",
            target,
        )
    ratio_row(
        "PostgreSQL: process_many(64), full", "test_pg_process_many", "test_pg_raw_batched", 0.5
    )
    ratio_row(
        "PostgreSQL: process_many(64), full, snapshot every 100 entries (the default)",
        "test_pg_process_many_default_snapshots",
        "test_pg_raw_batched",
        None,
    )
    if "test_pg_reader_lag" in m:
        lag = m["test_pg_reader_lag"][1]
        for name, key, target in (("p99", "p99_ms", 100.0), ("median", "median_ms", None)):
            out.append(
                {
                    "figure": f"PostgreSQL: follower lag, {name}",
                    "ours": lag[key],
                    "baseline": "-",
                    "unit": "ms",
                    "ratio": "-",
                    "target": "-" if target is None else f"< {target:g} ms",
                    "met": None if target is None else lag[key] < target,
                }
            )
    if memory is not None:
        out.append(
            {
                "figure": "idle RSS (runtime started, no events)",
                "ours": memory["idle_mb"],
                "baseline": memory["bare_mb"],
                "unit": "MB",
                "ratio": "-",
                "target": "< 25 MB",
                "met": memory["idle_mb"] < 25,
            }
        )
        fleet = memory.get("fleet")
        if fleet:
            out.append(
                {
                    "figure": f"host: RSS per loaded idle agent ({fleet['agents']:,} agents)",
                    "ours": fleet["kb_per_agent"],
                    "baseline": "-",
                    "unit": "KB",
                    "ratio": "-",
                    "target": "-",
                    "met": None,
                }
            )
            out.append(
                {
                    "figure": f"host: threads with 1 agent / {fleet['agents']:,} agents",
                    "ours": fleet["threads_n"],
                    "baseline": fleet["threads_1"],
                    "unit": "threads",
                    "ratio": "-",
                    "target": "flat",
                    "met": fleet["threads_n"] == fleet["threads_1"],
                }
            )
        out.append(
            {
                "figure": f"RSS growth over {memory['events']:,} events after warm-up",
                "ours": memory["growth_after_warmup_mb"],
                "baseline": "-",
                "unit": "MB",
                "ratio": "-",
                "target": "bounded",
                "met": memory["growth_after_warmup_mb"] < 5,
            }
        )
    return out


def combine(tables: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per figure: the median run's row, with the spread over every run.

    Rows are matched by figure name. A figure's median run is ranked by its ratio when
    it has one, else by its own value; a figure missing from a run is left out there.
    A value that is not a number can't be ranked: its row is the middle run's, in run
    order, and its spread is "-".
    """
    names = list(dict.fromkeys(row["figure"] for table in tables for row in table))
    out: list[dict[str, Any]] = []
    for name in names:
        found = [row for table in tables for row in table if row["figure"] == name]
        key = "ratio" if isinstance(found[0]["ratio"], float) else "ours"
        if not all(isinstance(row[key], int | float) for row in found):
            out.append({**found[len(found) // 2], "spread": "-", "runs": len(found)})
            continue
        ranked = sorted(found, key=lambda row: float(row[key]))
        low, high = ranked[0][key], ranked[-1][key]
        spread = "-" if len(found) == 1 else f"{low}-{high}"
        out.append({**ranked[(len(ranked) - 1) // 2], "spread": spread, "runs": len(found)})
    return out


def render(table: list[dict[str, Any]]) -> str:
    headers = ["figure", "ours", "baseline", "unit", "ratio", "spread", "target", "met"]
    cells = [headers] + [[_cell(r[h]) for h in headers] for r in table]
    widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "NO"
    return "-" if value is None else str(value)


def plot(table: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ratios = [r for r in table if isinstance(r["ratio"], float)]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(ratios) + 1.5))
    names = [r["figure"] for r in ratios]
    ax.barh(
        names,
        [r["ratio"] for r in ratios],
        color=["#4a8" if r["met"] in (True, None) else "#d64" for r in ratios],
    )
    for i, r in enumerate(ratios):
        if r["target"] != "-":
            t = float(r["target"].split()[-1])
            ax.plot([t, t], [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.set_xlabel("ours / baseline (same run); black bar: target")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--from",
        dest="sources",
        type=Path,
        nargs="+",
        help="pytest-benchmark JSON files (one per run) to report instead of running",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="how many times to run the suites (default 5): medians, and the spread",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="also replay 1M entries and stream 1M events for memory",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="where to write summary.json and ratios.png",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    for source in args.sources or ():  # read before anything is measured or written
        try:
            medians(source)
        except ValueError as exc:
            parser.error(f"--from: {exc}")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"--out {args.out}: can't make that folder: {exc.strerror or exc}")
    raws = args.sources or [run_suites(args.out, args.large, n) for n in range(1, args.runs + 1)]
    memory = None if args.no_memory else measure(1_000_000 if args.large else 100_000)
    if memory is not None:
        memory["fleet"] = measure_fleet(1000)
    table = combine([rows(medians(raw), memory) for raw in raws])
    about = machine()
    print("\nMachine: " + ", ".join(f"{k} {v}" for k, v in about.items()))
    print(
        "Both sides are timed alike: each run opens its file, writes, and closes it "
        "(ours: asyncio.run with start() and stop(); raw: connect, schema, close)."
    )
    print(f"Each figure is the median of {len(raws)} run(s); spread: the lowest and highest.")
    print(render(table))
    summary = {"machine": about, "figures": table, "memory": memory}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    drawn = plot(table, args.out / "ratios.png")
    print(
        f"\nwrote {args.out / 'summary.json'}"
        + (f" and {args.out / 'ratios.png'}" if drawn else " (install matplotlib for the plot)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
