"""Draws the burn-down figures of a benchmark session as one SVG bar chart.

It reads the ``--json`` output of three benchmarks run one after the other on the
same server, and draws two panels: Conveyor's worker next to what this machine
allows (the bare loop of ``throughput.py`` and the pgbench ceiling of
``ceiling.py``), and Conveyor next to its peers (``peers.py``, one run)::

    python benchmarks/throughput.py --dsn ... --processes 1,2,4 --json > throughput.json
    python benchmarks/ceiling.py --dsn ... --jobs 100000 --json > ceiling.json
    python benchmarks/peers.py --dsn ... --jobs 50000 --json > peers.json
    python benchmarks/chart.py throughput.json ceiling.json peers.json \\
        --out docs/images/benchmarks.svg

Plain SVG, written by hand: no plotting library to install.
"""

from __future__ import annotations

import argparse
import json
from html import escape
from pathlib import Path
from typing import Any

WIDTH = 760
LABEL_WIDTH = 270
BAR_HEIGHT = 22
GAP = 8
TITLE_HEIGHT = 34
CONVEYOR = "#2f6fde"
REFERENCE = "#9aa5b1"
PEER = "#e0884a"


Bar = tuple[str, float, str]  # label, jobs/s, colour


def ceiling_bars(throughput: dict[str, Any], ceiling: dict[str, Any]) -> list[Bar]:
    bars: list[Bar] = []
    for row in throughput["references"]:
        if row["name"].startswith("ref: bare loop"):
            bars.append(("bare asyncio loop (no features)", row["per_second"], REFERENCE))
    for case in ceiling["cases"]:
        if case["batch"] == 500:
            clients = case["clients"]
            bars.append((f"pgbench, Conveyor's SQL, {clients} client{'s' * (clients > 1)}",
                         case["per_second"], REFERENCE))
    best: dict[int, float] = {}
    for row in throughput["burn_down"]:
        best[row["processes"]] = max(best.get(row["processes"], 0.0), row["per_second"])
    for processes, per_second in sorted(best.items()):
        bars.append((f"Conveyor, {processes} worker process{'es' * (processes > 1)}",
                     per_second, CONVEYOR))
    return bars


def peer_bars(peers: dict[str, Any]) -> list[Bar]:
    return [(f"{row['name']} ({row['configuration'].split(', ')[-1]})" if row["name"] != "Conveyor"
             else "Conveyor, 1 worker process", row["per_second"],
             CONVEYOR if row["name"] == "Conveyor" else PEER)
            for row in peers["systems"]]


def panel(title: str, bars: list[Bar], top: int) -> tuple[list[str], int]:
    scale = (WIDTH - LABEL_WIDTH - 90) / max(value for _, value, _ in bars)
    parts = [f'<text x="10" y="{top + 22}" class="title">{escape(title)}</text>']
    y = top + TITLE_HEIGHT
    for label, value, colour in bars:
        length = max(1.0, value * scale)
        parts += [
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>',
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" '
            f'fill="{colour}"/>',
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 15}">{value:,.0f}</text>',
        ]
        y += BAR_HEIGHT + GAP
    return parts, y


def draw(throughput: dict[str, Any], ceiling: dict[str, Any], peers: dict[str, Any]) -> str:
    jobs = throughput["parameters"]["jobs"]
    first, bottom = panel(f"Burn-down of {jobs:,} no-op jobs, jobs/s (durable commits)",
                          ceiling_bars(throughput, ceiling), 0)
    peer_jobs = peers["systems"][0]["jobs"]
    second, bottom = panel(f"Next to other PostgreSQL queues for Python, {peer_jobs:,} jobs, "
                           "same run, jobs/s", peer_bars(peers), bottom + 12)
    env = throughput["environment"]
    server = str(env.get("postgresql", "PostgreSQL")).split(" (")[0].split(" on ")[0]
    settings = env.get("settings", {})
    note = (f"{server}, fsync={settings.get('fsync', '?')}, synchronous_commit="
            f"{settings.get('synchronous_commit', '?')}, {env.get('cpu_count', '?')} CPUs; "
            "commands in docs/benchmarks.md")
    height = bottom + 30
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">',
        "<style>.title { font-weight: bold; font-size: 14px } .note { fill: #555 }</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        *first, *second,
        f'<text x="10" y="{height - 10}" class="note">{escape(note)}</text>',
        "</svg>", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("throughput", type=Path, help="throughput.py --json output")
    parser.add_argument("ceiling", type=Path, help="ceiling.py --json output")
    parser.add_argument("peers", type=Path, help="peers.py --json output")
    parser.add_argument("--out", type=Path, default=Path("docs/images/benchmarks.svg"))
    args = parser.parse_args(argv)
    loaded = [json.loads(path.read_text()) for path in (args.throughput, args.ceiling,
                                                         args.peers)]
    args.out.write_text(draw(*loaded))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
