#!/usr/bin/env python3
"""Turns bench/run.sh's JSON lines into BASE.json and BASE.md (tables + issue-5 targets), and
prints the markdown. Usage: report.py RESULTS.jsonl BASE"""
import json
import sys

TARGETS = ["direct", "nginx", "bare", "ezrouter"]
SCENARIOS = ["chat", "chat-xlate", "stream50", "stream50-xlate", "slow", "slow-xlate"]
TITLES = {
    "chat": "Non-stream chat, pass-through (OpenAI -> OpenAI)",
    "chat-xlate": "Non-stream chat, translated (Anthropic client -> OpenAI upstream)",
    "stream50": "50-chunk stream, pass-through",
    "stream50-xlate": "50-chunk stream, translated (Anthropic client -> OpenAI upstream)",
    "slow": "Slow realistic stream (100 ms TTFB, 50 chunks 5 ms apart), pass-through",
    "slow-xlate": "Slow realistic stream, translated",
}


def load(path):
    runs, idle, meta = [], [], {}
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        kind = r.get("kind")
        if kind == "idle":
            idle.append(r)
        elif kind == "meta":
            meta = r
        else:
            runs.append(r)
    return runs, idle, meta


SUMMED = {"requests", "ok", "errors", "truncated", "stalled", "events", "steal_ms"}
MAXED = {"peak_rss_kb", "rss_kb", "peak_open"}


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if n == 0 else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)


def merge(rs, key=None):
    """One record from the repeats of a cell: medians of rates, latencies and CPU per request,
    sums of counts, maxima of memory."""
    first = rs[0]
    out = {}
    for k, v in first.items():
        vals = [r.get(k) for r in rs]
        if isinstance(v, dict):
            out[k] = merge([x or {} for x in vals], k)
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or k in ("concurrency",):
            out[k] = v
        else:
            nums = [x for x in vals if isinstance(x, (int, float))]
            if key == "error_kinds" or k in SUMMED:
                out[k] = sum(nums)
            elif k in MAXED:
                out[k] = max(nums) if nums else None
            else:
                out[k] = median(nums)
    return out


def aggregate(raw):
    cells = {}
    for r in raw:
        cells.setdefault((r["target"], r["scenario"], r["concurrency"]), []).append(r)
    runs = []
    for rs in cells.values():
        m = merge(rs)
        cpu = [r.get("proxy_cpu_us_per_req") for r in rs if r.get("proxy_cpu_us_per_req") is not None]
        m["repeats"] = len(rs)
        m["proxy_cpu_us_per_req_range"] = [min(cpu), max(cpu)] if cpu else None
        p99 = [g(r, "latency_us", "p99") for r in rs if g(r, "latency_us", "p99") is not None]
        m["latency_p99_us_each"] = p99
        runs.append(m)
    return runs


def g(r, *path):
    for p in path:
        if r is None:
            return None
        r = r.get(p)
    return r


def us(v):
    if v is None:
        return "-"
    return f"{v / 1000:.2f} ms" if v >= 10000 else f"{v:.0f}"


def ust(v):
    """A latency with its unit."""
    if v is None:
        return "-"
    return f"{v / 1000:.2f} ms" if v >= 10000 else f"{v:.0f} us"


def num(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)


def mb(kb):
    return "-" if not kb else f"{kb / 1024:.1f}"


def find(runs, target, scenario, c):
    for r in runs:
        if r["target"] == target and r["scenario"] == scenario and r["concurrency"] == c:
            return r
    return None


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def table(runs, scenario):
    rows = [r for r in runs if r["scenario"] == scenario]
    if not rows:
        return []
    out = [f"### {TITLES.get(scenario, scenario)}", ""]
    stream = scenario not in ("chat", "chat-xlate")
    head = "| c | target | req/s | p50 | p99 |"
    sep = "|---:|---|---:|---:|---:|"
    if stream:
        head += " TTFB p50 | TTFB p99 | gap p99 |"
        sep += "---:|---:|---:|"
    head += " proxy CPU us/req | range | x bare | x nginx | mock CPU us/req | peak RSS MB | errors | trunc/stall |"
    sep += "---:|---:|---:|---:|---:|---:|---:|---:|"
    out += [head, sep]
    base = scenario.replace("-xlate", "")
    for c in sorted({r["concurrency"] for r in rows}):
        for t in TARGETS:
            r = find(runs, t, scenario, c)
            if not r:
                continue
            cpu = r.get("proxy_cpu_us_per_req")
            bare = g(find(runs, "bare", base, c), "proxy_cpu_us_per_req")
            nginx = g(find(runs, "nginx", base, c), "proxy_cpu_us_per_req")
            line = f"| {c} | {t} | {num(r.get('rps'))} | {us(g(r, 'latency_us', 'p50'))} | {us(g(r, 'latency_us', 'p99'))} |"
            if stream:
                line += f" {us(g(r, 'ttfb_us', 'p50'))} | {us(g(r, 'ttfb_us', 'p99'))} | {us(g(r, 'gap_us', 'p99'))} |"
            rb, rn = ratio(cpu, bare), ratio(cpu, nginx)
            rg = r.get("proxy_cpu_us_per_req_range")
            rgs = f"{rg[0]:.0f}-{rg[1]:.0f}" if rg and len(rg) == 2 and r.get("repeats", 1) > 1 else "-"
            line += (f" {num(cpu, '{:.1f}')} | {rgs} | {num(rb, '{:.2f}')} | {num(rn, '{:.2f}')} |"
                     f" {num(r.get('mock_cpu_us_per_req'), '{:.1f}')} | {mb(r.get('peak_rss_kb'))} |"
                     f" {r.get('errors', '-')} | {r.get('truncated', '-') if stream else '-'}/{r.get('stalled', '-') if stream else '-'} |")
            out.append(line)
    out.append("")
    return out


def verdict(ok):
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def targets(runs, idle, meta):
    res = []
    cpu = lambda t, s, c=64: g(find(runs, t, s, c), "proxy_cpu_us_per_req")

    for s, label in (("chat", "non-stream"), ("stream50", "50-chunk stream")):
        e, b, n = cpu("ezrouter", s), cpu("bare", s), cpu("nginx", s)
        r = ratio(e, b)
        res.append({"target": f"Pass-through {label}: ezrouter CPU/req <= 1.0x bare Pingora (c=64)",
                    "value": f"{num(e, '{:.1f}')} vs {num(b, '{:.1f}')} us = {num(r, '{:.2f}')}x (nginx {num(n, '{:.1f}')} us; ezrouter = {num(ratio(e, n), '{:.2f}')}x nginx)",
                    "pass": None if r is None else r <= 1.0})
    for s, label in (("chat", "non-stream"), ("stream50", "stream")):
        e, b = cpu("ezrouter", s + "-xlate"), cpu("bare", s)
        r = ratio(e, b)
        res.append({"target": f"Translated {label}: ezrouter CPU/req <= 1.5x bare Pingora pass-through (c=64)",
                    "value": f"{num(e, '{:.1f}')} vs {num(b, '{:.1f}')} us = {num(r, '{:.2f}')}x",
                    "pass": None if r is None else r <= 1.5})
    for s in ("chat", "stream50"):
        e, b, n = (find(runs, t, s, 1) for t in ("ezrouter", "bare", "nginx"))
        e50, b50 = g(e, "latency_us", "p50"), g(b, "latency_us", "p50")
        if s == "stream50":
            e50, b50 = g(e, "ttfb_us", "p50"), g(b, "ttfb_us", "p50")
        d = None if e50 is None or b50 is None else e50 - b50
        what = "latency" if s == "chat" else "TTFB"
        res.append({"target": f"c=1 {s}: ezrouter {what} p50 within 20 us of bare Pingora",
                    "value": f"{ust(e50)} vs {ust(b50)}: {num(d, '{:+.0f}')} us",
                    "pass": None if d is None else d <= 20})
        e99, n99 = g(e, "latency_us", "p99"), g(n, "latency_us", "p99")
        each = lambda r: "/".join(str(round(v)) for v in ((r or {}).get("latency_p99_us_each") or []))
        steal = lambda r: num(g(r, "steal_ms"), "{:.0f}")
        res.append({"target": f"c=1 {s}: ezrouter latency p99 <= nginx p99",
                    "value": f"{ust(e99)} vs {ust(n99)} (median of repeats; each: ezrouter {each(e)}, nginx {each(n)}; "
                             f"VM steal during them: {steal(e)} / {steal(n)} ms)",
                    "pass": None if e99 is None or n99 is None else e99 <= n99})
    e, n, d = (find(runs, t, "slow", 256) for t in ("ezrouter", "nginx", "direct"))
    e99, n99, d99 = g(e, "ttfb_us", "p99"), g(n, "ttfb_us", "p99"), g(d, "ttfb_us", "p99")
    added = lambda v: None if v is None or d99 is None else v - d99
    res.append({"target": "Slow streams c=256: ezrouter added TTFB p99 <= nginx's",
                "value": f"ezrouter {ust(e99)}, nginx {ust(n99)}, direct {ust(d99)} (added: {num(added(e99), '{:+.0f}')} vs {num(added(n99), '{:+.0f}')} us)",
                "pass": None if e99 is None or n99 is None else e99 <= n99})
    bad = None if e is None else e.get("stalled", 0) + e.get("truncated", 0) + e.get("errors", 0)
    ex = find(runs, "ezrouter", "slow-xlate", 256)
    bad_x = None if ex is None else ex.get("stalled", 0) + ex.get("truncated", 0) + ex.get("errors", 0)
    res.append({"target": "Slow streams c=256: zero stalled or truncated streams (ezrouter, pass-through and translated)",
                "value": f"stalled+truncated+errors: pass-through {bad}, translated {bad_x}",
                "pass": None if bad is None else (bad == 0 and (bad_x in (None, 0)))})
    n10k = meta.get("n10k")
    big = [r for r in runs if r["target"] == "ezrouter" and r["scenario"] == "slow" and r["concurrency"] == n10k]
    others = [r for r in runs if r["target"] in ("nginx", "bare") and r["scenario"] == "slow" and r["concurrency"] == n10k]
    if big:
        r = big[0]
        peak = r.get("peak_rss_kb") or 0
        res.append({"target": f"{n10k} concurrent slow streams: zero errors, peak RSS <= 200 MB",
                    "value": f"peak open {r.get('peak_open')}, errors {r.get('errors')}, truncated {r.get('truncated')}, stalled {r.get('stalled')}, peak RSS {mb(peak)} MB"
                             + "".join(f"; {o['target']}: errors {o.get('errors')}, peak RSS {mb(o.get('peak_rss_kb'))} MB" for o in others),
                    "pass": r.get("errors", 1) == 0 and r.get("truncated", 1) == 0 and peak <= 200 * 1024})
    ie = [i for i in idle if i["target"] == "ezrouter"]
    if ie:
        kb = ie[0]["idle_rss_kb"]
        others = ", ".join(f"{i['target']} {mb(i['idle_rss_kb'])} MB" for i in idle if i["target"] != "ezrouter" and i["phase"] == ie[0]["phase"])
        res.append({"target": "Idle RSS <= 20 MB", "value": f"ezrouter {mb(kb)} MB ({others})", "pass": kb <= 20 * 1024})
    return res


def headline(runs, idle, meta):
    out = ["| scenario (c=64 CPU; c=1 latency) | direct (mock) | nginx | bare Pingora | ezrouter |", "|---|---:|---:|---:|---:|"]
    for s in SCENARIOS[:4]:
        base = s.replace("-xlate", "")
        cells = []
        for t in TARGETS:
            src = s if t == "ezrouter" else base
            if t != "ezrouter" and s.endswith("-xlate"):
                cells.append("(pass-through above)")
                continue
            r64, r1 = find(runs, t, src, 64), find(runs, t, src, 1)
            if r64 is None:
                cells.append("-")
                continue
            cpu = r64.get("proxy_cpu_us_per_req") if t != "direct" else r64.get("mock_cpu_us_per_req")
            lab = "mock " if t == "direct" else ""
            cells.append(f"{lab}{num(cpu, '{:.1f}')} us/req; c=1 p50/p99 {us(g(r1, 'latency_us', 'p50'))}/{ust(g(r1, 'latency_us', 'p99'))}")
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    idle_by = {i["target"]: i["idle_rss_kb"] for i in idle if i["phase"] == "fast"}
    n10k = meta.get("n10k")
    peak = {t: g(find(runs, t, "slow", n10k), "peak_rss_kb") for t in TARGETS}
    peak256 = {t: g(find(runs, t, "stream50", 256), "peak_rss_kb") for t in TARGETS}
    out.append("| RSS idle / peak at c=256 / peak at " + str(n10k) + " slow streams (MB) | - | "
               + " | ".join(f"{mb(idle_by.get(t))} / {mb(peak256.get(t))} / {mb(peak.get(t))}" for t in TARGETS[1:]) + " |")
    return out


def main():
    raw, idle, meta = load(sys.argv[1])
    runs = aggregate(raw)
    base = sys.argv[2]
    tg = targets(runs, idle, meta)
    md = [f"# ezrouter benchmark, {meta.get('date', '')}", ""]
    md.append(f"Machine: {meta.get('nproc')} cores, {meta.get('cpu')}, kernel {meta.get('kernel')}; nginx {meta.get('nginx')}, wrk {meta.get('wrk')}; "
              f"git {meta.get('git')}. Command: `{meta.get('command')}` ({meta.get('duration_s')} s per run, {meta.get('total_s')} s in all; "
              f"ulimit -n {meta.get('nofile')}).")
    md += ["", f"Each cell is the median of {meta.get('repeat', 1)} run(s) ({meta.get('tail_repeat', meta.get('repeat', 1))} for c=1 chat and stream50 and slow c=256, "
           "whose p99 the targets compare); targets interleaved; latencies in microseconds unless marked ms. "
           "CPU us/req = on-CPU time of the proxy process(es) (all threads; nginx master + workers) / requests completed; "
           "`range` = min-max over the repeats. Errors, truncated and stalled streams are summed over the repeats.", ""]
    md += ["## Headline", ""] + headline(runs, idle, meta) + [""]
    md += ["## Issue 5 targets", "", "| target | measured | verdict |", "|---|---|---|"]
    md += [f"| {t['target']} | {t['value']} | {verdict(t['pass'])} |" for t in tg]
    md += ["", "## All runs", ""]
    for s in SCENARIOS:
        md += table(runs, s)
    md += ["Idle RSS (after start-up, before traffic): " + ", ".join(f"{i['target']} ({i['phase']}) {mb(i['idle_rss_kb'])} MB" for i in idle), ""]
    text = "\n".join(md)
    open(base + ".md", "w").write(text)
    json.dump({"meta": meta, "idle": idle, "targets": tg, "medians": runs, "runs": raw}, open(base + ".json", "w"), indent=1)
    print(text)


if __name__ == "__main__":
    main()
