#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Summarize bench/run.sh results: medians over runs, ratios to the peers, targets.

usage: summarize.py RESULTS_DIR [--append FILE] [--title TEXT]

RESULTS_DIR holds <bench>.<server>.<run>.json (idnode-bench --json output, or bench/lmdb_commit
--json output for the B6 baseline) and meta.json (date, commit, machine, counts, import figures). Prints a Markdown section; with --append it is
also appended to FILE. Exits 1 when a report is missing or does not parse, 0 otherwise.
"""
import glob
import json
import os
import statistics
import sys


def from_lmdb_commit(doc):
    """A bench/lmdb_commit --json report in the shape of an idnode-bench one (its commits are
    the replies, their latency the reply latency)."""
    n = doc["count"]
    return {"completed": n, "sent": n, "lost": 0, "achieved_rate": doc["commits_per_s"],
            "latency_us": {"p50": doc["p50_us"], "p99": doc["p99_us"], "p99.9": doc["max_us"]},
            "reply_bytes": 0}


def write_view(doc):
    """For a write run: the durable acks (RC_SUCCESS) are the replies that count."""
    w = doc.get("write")
    if not w:
        return doc
    d = dict(doc)
    d["achieved_rate"] = w.get("acks_per_s", doc.get("achieved_rate"))
    lat = dict(doc.get("latency_us") or {})
    lat["p50"], lat["p99"] = w.get("ack_p50_us", lat.get("p50")), w.get("ack_p99_us", lat.get("p99"))
    d["latency_us"] = lat
    return d


def load(results):
    runs = {}
    bad = []
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        base = os.path.basename(path)
        if base == "meta.json":
            continue
        parts = base[:-5].split(".")
        if len(parts) != 3:
            continue
        bench, server, _run = parts
        try:
            with open(path) as f:
                doc = json.load(f)
            if isinstance(doc, dict) and doc.get("bench") == "lmdb_commit":
                doc = from_lmdb_commit(doc)
            elif isinstance(doc, dict):
                doc = write_view(doc)
            if not isinstance(doc, dict) or "completed" not in doc:
                raise ValueError("not a report")
        except (OSError, ValueError) as e:
            bad.append(f"{base}: {e}")
            continue
        runs.setdefault((bench, server), []).append(doc)
    return runs, bad


def per_cpu(d):
    s = d.get("server") or {}
    return s.get("replies_per_cpu_s")


def med(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def fmt_k(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fmt_range(t):
    m, lo, hi = t
    if m is None:
        return "–"
    if lo == hi:
        return fmt_k(m)
    return f"{fmt_k(m)} [{fmt_k(lo)}–{fmt_k(hi)}]"


def stats(runs, key):
    docs = runs.get(key, [])
    return {
        "n": len(docs),
        "cpu": med([per_cpu(d) for d in docs]),
        "wall": med([d.get("achieved_rate") for d in docs]),
        "p50": med([d["latency_us"]["p50"] for d in docs if d.get("latency_us")]),
        "p99": med([d["latency_us"]["p99"] for d in docs if d.get("latency_us")]),
        "p999": med([d["latency_us"]["p99.9"] for d in docs if d.get("latency_us")]),
        "loss": med([100.0 * (d["lost"] + d.get("unsent", 0)) / max(1, d["sent"] + d.get("unsent", 0))
                     for d in docs]),
        "rss": med([(d.get("server") or {}).get("rss_anon_kb") for d in docs]),
        "reply": med([d["reply_bytes"] / d["completed"] for d in docs if d.get("completed")]),
        "codes": docs[-1].get("rcodes") if docs else {},
    }


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def verdict(r, target, floor=None, higher=True):
    if r is None:
        return "n/a"
    ok = r >= target if higher else r <= target
    if ok:
        return "met"
    if floor is not None and (r >= floor if higher else r <= floor):
        return "above floor, below target"
    return "MISSED"


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    results = args[0]
    append = None
    title = None
    i = 1
    while i < len(args):
        if args[i] == "--append" and i + 1 < len(args):
            append = args[i + 1]
            i += 2
        elif args[i] == "--title" and i + 1 < len(args):
            title = args[i + 1]
            i += 2
        else:
            print(f"summarize.py: unknown argument {args[i]}", file=sys.stderr)
            return 2
    meta = {}
    try:
        with open(os.path.join(results, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        print(f"summarize.py: meta.json: {e}", file=sys.stderr)
        return 1
    runs, bad = load(results)
    expected = meta.get("expected", [])
    missing = [k for k in expected if tuple(k.split(".")) not in runs]

    S = {k: stats(runs, k) for k in runs}

    def get(bench, server, field="cpu"):
        s = S.get((bench, server))
        return s[field][0] if s else None

    lines = []
    lines.append(f"### {title or 'Suite run'} — {meta.get('date', '?')}, commit {meta.get('commit', '?')}")
    lines.append("")
    lines.append(f"Machine: {meta.get('machine', '?')}; kernel {meta.get('kernel', '?')}. "
                 f"Server pinned to CPU {meta.get('server_cpu', '?')} (one worker / one UDP worker), "
                 f"idnode-bench on CPU {meta.get('gen_cpu', '?')}. "
                 f"{meta.get('count', '?')} identifiers; {meta.get('runs', '?')} run(s) × "
                 f"{meta.get('duration', '?')} s (+{meta.get('warmup', '?')} s warm-up) per cell; "
                 f"figures are the median [min–max] over runs. Primary metric: replies per server "
                 f"CPU-second (utime+stime of all server threads from /proc)."
                 + (" **Smoke run (tiny data, ~1 s cells): the figures are not meaningful, only the "
                    "plumbing is.**" if meta.get("smoke") else ""))
    lines.append("")
    lines.append("| benchmark | server | replies / server CPU-s | wall replies/s | p50 / p99 µs | loss % | reply B |")
    lines.append("|---|---|---|---|---|---|---|")
    order = ["b4u", "b4z", "b2", "b3", "http", "lat", "b2c", "b2ch", "lat2c", "lat2cu", "b1", "b1t", "b5",
             "lat5", "b5s", "b6", "b6p", "b6l", "b4u10m", "b4z10m"]
    names = {
        "b4u": "B4 UDP resolve, uniform",
        "b4z": "B4 UDP resolve, Zipf 1.0",
        "b2": "B2 TCP, pipelined",
        "b3": "B3 REST GET keep-alive",
        "http": "HTTP native tunnel, keep-alive",
        "lat": "UDP at 50 % of max, open loop",
        "b2c": "B2c connect per request (idnoded: Handle TCP; nginx: HTTP GET, Connection: close)",
        "b2ch": "B2c REST GET, connect per request (Connection: close)",
        "lat2c": "B2c Handle TCP connect per request at 50 % of its max, open loop",
        "lat2cu": "UDP at the same rate as the row above, open loop",
        "b6": "B6 durable creates (write_sync full), TCP, IDIS login per connection",
        "b6p": "B6 creates, write_sync periodic (fsync every 1 s)",
        "b6l": "B6 baseline: LMDB alone, one put per fsync'ed commit",
        "b1": "B1 UDP resolve at a delegating node, every query a cache hit",
        "b1t": "B1 with the URL only (one-datagram answers, as the echo's)",
        "b5": "B5 UDP resolve, every query a miss sent upstream (delegating node; the upstream itself)",
        "lat5": "B5 at 50 % of its max, open loop (through the delegating node; at the upstream)",
        "b5s": "B5s serve-stale, upstream black-holed, TTLs expired",
        "b4u10m": "B4 UDP uniform, 10M ids",
        "b4z10m": "B4 UDP Zipf, 10M ids",
    }
    keys = sorted(S.keys(), key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1] != "idnoded", k[1]))
    for k in keys:
        s = S[k]
        p = "–"
        if s["p50"][0] is not None:
            p = f"{s['p50'][0]:.0f} / {s['p99'][0]:.0f}"
        loss = f"{s['loss'][0]:.3f}" if s["loss"][0] is not None else "–"
        rb = f"{s['reply'][0]:.0f}" if s["reply"][0] is not None else "–"
        lines.append(f"| {names.get(k[0], k[0])} | {k[1]} | {fmt_range(s['cpu'])} | {fmt_k(s['wall'][0])} | {p} | {loss} | {rb} |")
    lines.append("")

    # targets
    t = []
    r = ratio(get("b4u", "idnoded"), get("b4u", "knot"))
    t.append(("B4 UDP vs Knot DNS (uniform)", r, "≥ 1.0× (floor 0.8×)", verdict(r, 1.0, 0.8)))
    r = ratio(get("b4z", "idnoded"), get("b4z", "knot"))
    t.append(("B4 UDP vs Knot DNS (Zipf)", r, "≥ 1.0× (floor 0.8×)", verdict(r, 1.0, 0.8)))
    r = ratio(get("b4u", "idnoded"), get("b4u", "echo"))
    t.append(("B4 UDP vs UDP echo ceiling", r, "(reference; B1 cache-hit target ≥ 0.70×)", "info"))
    r = ratio(get("b2", "idnoded"), get("b4u", "idnoded"))
    t.append(("B2 TCP vs our UDP", r, "≥ 0.65×", verdict(r, 0.65)))
    r = ratio(get("b2", "idnoded"), get("b2", "knot"))
    t.append(("B2 TCP vs Knot DNS TCP", r, "(B2 stretch ≥ 1.2×)", "info"))
    r = ratio(get("b3", "idnoded"), get("b3", "nginx"))
    t.append(("B3 REST vs nginx", r, "≥ 1.0×", verdict(r, 1.0)))
    r = ratio(get("b2c", "idnoded"), get("b2c", "nginx"))
    t.append(("B2c TCP connect-per-request vs nginx close-per-request GET", r, "≥ 1.0× (stretch 1.3×)",
              verdict(r, 1.0)))
    r = ratio(get("b2ch", "idnoded"), get("b2c", "nginx"))
    t.append(("B2c REST GET connect-per-request vs nginx", r, "(info)", "info"))
    l2c, l2u = S.get(("lat2c", "idnoded")), S.get(("lat2cu", "idnoded"))
    if l2c and l2u:
        r = ratio(l2c["p99"][0], l2u["p99"][0])
        t.append((f"B2c p99 / UDP p99, same offered load ({fmt_k(meta.get('lat2c_rate'))} per s)", r,
                  "≤ 1.0×", verdict(r, 1.0, higher=False)))
    if S.get(("b6", "idnoded")):
        rate = get("b6", "idnoded", "wall")
        t.append(("B6 durable create rate, write_sync full", rate, "≥ 10k/s (stretch 20k/s)",
                  verdict(rate, 10000.0)))
        r = ratio(rate, get("b6l", "lmdb_commit", "wall"))
        t.append(("B6 durable creates vs LMDB one fsync'ed commit per write (same disk, same run)",
                  r, "≥ 10×", verdict(r, 10.0)))
        p99 = get("b6", "idnoded", "p99")
        t.append(("B6 durable create ack p99, µs", p99, "≤ 10 ms", verdict(p99, 10000.0, higher=False)))
        r = ratio(get("b6p", "idnoded", "wall"), rate)
        t.append(("B6 write_sync periodic vs full (creates per second)", r, "(info)", "info"))
    r = ratio(get("b1", "idnoded-resolver"), get("b4u", "echo"))
    t.append(("B1 cache-hit UDP resolve vs UDP echo ceiling", r, "≥ 0.70×", verdict(r, 0.70)))
    r = ratio(get("b1t", "idnoded-resolver"), get("b4u", "echo"))
    t.append(("B1 with one-datagram answers (URL only) vs UDP echo ceiling", r, "(info)", "info"))
    r = ratio(get("b5", "idnoded-resolver"), get("b1", "idnoded-resolver"))
    t.append(("B5 upstream-miss path vs B1, per delegating-node CPU-s", r, "≥ 0.2×", verdict(r, 0.2)))
    l5r, l5u = S.get(("lat5", "idnoded-resolver")), S.get(("lat5", "idnoded-upstream"))
    if l5r and l5u and l5r["p50"][0] is not None and l5u["p50"][0] is not None:
        t.append((f"B5 added latency at {fmt_k(meta.get('lat5_rate'))}/s, p50 µs",
                  l5r["p50"][0] - l5u["p50"][0], "(reported)", "info"))
        t.append((f"B5 added latency at {fmt_k(meta.get('lat5_rate'))}/s, p99 µs",
                  l5r["p99"][0] - l5u["p99"][0], "(reported)", "info"))
    b5s = S.get(("b5s", "idnoded-resolver"))
    if b5s and b5s["loss"][0] is not None:
        answered = 100.0 - b5s["loss"][0]
        budget = meta.get("b5s_budget_ms", 0)
        t.append((f"B5s keys answered within the {budget} ms budget (+300 ms), %", answered,
                  "100 %", verdict(answered, 100.0)))
        if b5s["p99"][0] is not None:
            t.append(("B5s p99 µs", b5s["p99"][0], f"(budget {budget} ms)", "info"))
    if meta.get("b5s_refresh") is not None:
        t.append(("B5s refreshes per key per hold interval", meta["b5s_refresh"], "≤ 1",
                  verdict(meta["b5s_refresh"], 1.0, higher=False)))
    imp = meta.get("import_rate")
    t.append(("import rate (records/s)", imp, "≥ 100k/s", verdict(imp, 100000.0)))
    if get("b4u10m", "idnoded") is not None and get("b4u", "idnoded"):
        # CPU per reply at 10M / at 1M = (replies/CPU-s at 1M) / (replies/CPU-s at 10M)
        r = ratio(get("b4u", "idnoded"), get("b4u10m", "idnoded"))
        t.append(("CPU per reply, 10M vs 1M ids", r, "≤ 1.3×", verdict(r, 1.3, higher=False)))
    if meta.get("import_rate_10m"):
        t.append(("import rate at 10M, gen piped into import (records/s)", meta["import_rate_10m"], "≥ 100k/s",
                  verdict(meta["import_rate_10m"], 100000.0)))
    lat = S.get(("lat", "idnoded"))
    if lat:
        p99 = lat["p99"][0]
        t.append((f"UDP p99 at 50 % load ({fmt_k(meta.get('lat_rate'))}/s), µs", p99, "≤ 250 µs",
                  verdict(p99, 250.0, higher=False)))
    rss = S.get(("b4u", "idnoded"))
    if rss and rss["rss"][0] is not None:
        mb = rss["rss"][0] / 1024.0
        t.append(("idnoded RSS outside the LMDB map (RssAnon), MB", mb, "≤ 64 MB", verdict(mb, 64.0, higher=False)))
    if meta.get("b6_only"):
        t = [row for row in t if row[1] is not None and row[0].startswith("B6")]
    lines.append("| target | figure | goal | verdict |")
    lines.append("|---|---|---|---|")
    for name, val, goal, v in t:
        if val is None:
            fig = "–"
        elif "rate" in name:
            fig = fmt_k(val) + "/s"
        elif "µs" in name or "MB" in name or name.endswith("%"):
            fig = f"{val:.1f}"
        elif "per key" in name:
            fig = f"{val:.3f}"
        else:
            fig = f"{val:.2f}×"
        lines.append(f"| {name} | {fig} | {goal} | {v} |")
    lines.append("")
    if meta.get("notes"):
        for n in meta["notes"]:
            lines.append(f"- {n}")
        lines.append("")
    if bad or missing:
        lines.append("Problems: " + "; ".join(bad + [f"missing {m}" for m in missing]))
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if append:
        with open(append, "a") as f:
            f.write("\n" + text)
    return 1 if (bad or missing) else 0


if __name__ == "__main__":
    sys.exit(main())
