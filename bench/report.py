"""Writes docs/benchmarks.md and its SVG chart from the harness's results JSON. The prose that
is not generated (analysis, profiles, what closes each gap) comes from bench/notes.md."""
import json
import math
import os
import statistics

from lib import MANY_CONCURRENCY

TOOLS = ["driftless", "flux", "flux-c20", "argocd", "argocd-ha", "kubectl", "ceiling", "ceiling-h1", "ceiling-v"]
COLORS = {"driftless": "#1b9e77", "flux": "#d95f02", "flux-c20": "#7570b3", "argocd": "#e6ab02",
          "argocd-ha": "#a6761d", "kubectl": "#e7298a",
          "ceiling": "#666666", "ceiling-h1": "#999999", "ceiling-v": "#bbbbbb"}
TITLES = {
    1: "Workload 1 — first sync of one path with N mixed objects (seconds)",
    2: "Workload 2 — unchanged re-sync of the same N (seconds, API requests)",
    3: "Workload 3 — one object changed among N (seconds from commit to applied)",
    4: "Workload 4 — many syncs of 4 objects each from one repository (seconds to all applied)",
    5: "Workload 5 — notification latency, commit → applied (seconds, p50 and p95)",
    6: "Workload 6 — fairness: small changes while one big sync runs (commit → applied of each small "
       "change, p50 and p95, seconds; N = the big sync's objects)",
    7: "Workload 7 — the agent restarted with N GitSyncs in sync (seconds until each was reconciled once; "
       "right after workload 4)",
}
EXTRA = {  # workload -> the columns after the common ones: (header, key)
    5: [("p95 s", "p95")],
    6: [("p95 s", "p95"), ("small changes", "small"), ("of them during the big sync", "during_big"),
        ("big sync s", "big_s")],
}
TARGETS = [
    # (workload, n, metric, peer, factor, description)
    (1, 1000, "seconds", "flux", 5, "workload 1 at N = 1,000 at least 5× faster than Flux"),
    (2, 1000, "seconds", "flux", 10, "workload 2 at least 10× faster than Flux (N = 1,000)"),
    (2, 1000, "requests", "flux", 10, "workload 2 at least 10× fewer API requests than Flux (N = 1,000)"),
    (4, None, "seconds", "flux-c20", 5, "workload 4 at least 5× faster than Flux (concurrency 20)"),
]


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def split_writes(r):
    """The audit counter counts dry-run PATCHes as writes; take them out (from the profile)."""
    dry = (r.get("phases") or {}).get("dry-run apply", [0])[0]
    r["dry_runs"], r["real_writes"] = dry, r["writes"] - dry
    return r


def fmt(x, digits=2):
    if x is None:
        return "—"
    if isinstance(x, int) or (isinstance(x, float) and (x >= 100 or x.is_integer())):
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def spread(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    if len(vals) < 2:
        return ""
    return f"{fmt(min(vals))}–{fmt(max(vals))}"


def groups(results, workload):
    out = {}
    for r in results:
        if r["workload"] == workload and (r["requests"] > 0 or r["seconds"] > 0.1):
            out.setdefault((r["n"], r["tool"]), []).append(split_writes(r))
    return out


def ceiling(g, n, tools=("ceiling", "ceiling-h1")):
    """The faster of the ceiling clients (median seconds), or None."""
    vals = [med(g.get((n, t), []), "seconds") for t in tools]
    vals = [v for v in vals if v]
    return min(vals) if vals else None


def table(results, workload):
    g = groups(results, workload)
    if not g:
        return "_Not measured in this run._\n"
    extra = EXTRA.get(workload, [])
    lines = ["| N | tool | runs | median s | min–max s | driftless ÷ tool (time) | fraction of ceiling | "
             "API requests (dry-runs / writes) | peak RSS MiB | CPU s |" + "".join(f" {h} |" for h, _ in extra),
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(extra)]
    for n in sorted({k[0] for k in g}):
        d = med(g.get((n, "driftless"), []), "seconds")
        c = ceiling(g, n)
        for tool in TOOLS:
            rows = g.get((n, tool))
            if not rows:
                continue
            s = med(rows, "seconds")
            bound = any(r.get("timed_out") for r in rows) and workload != 6  # (6: the big sync's time)
            ratio = f"{d / s:.2f}" if d and s and tool != "driftless" else ""
            frac = f"{c / s:.0%}" if c and s and not tool.startswith("ceiling") else ""
            failed = any(r.get("failed") for r in rows)
            cell = f"failed after {fmt(s)}" if failed else f"{'≥ ' if bound else ''}{fmt(s)}"
            ratio = "" if failed else ratio
            line = (f"| {n:,} | {tool} | {len(rows)} | {cell} | {spread(rows, 'seconds')} | {ratio} | {frac} | "
                    f"{fmt(med(rows, 'requests'))} ({fmt(med(rows, 'dry_runs'))} / {fmt(med(rows, 'real_writes'))}) | {fmt(med(rows, 'peak_rss_mib'), 0)} | "
                    f"{fmt(med(rows, 'cpu_s'))} |")
            for _, key in extra:
                mark = "failed after " if key == "big_s" and any(r.get("big_failed") for r in rows) else \
                    "≥ " if key == "big_s" and any(r.get("timed_out") for r in rows) else ""
                line += f" {mark}{fmt(med(rows, key))} |"
            lines.append(line)
    return "\n".join(lines) + "\n"


def targets(results):
    lines = ["| target | measured | met? |", "|---|---|---|"]
    for w, n, metric, peer, factor, desc in TARGETS:
        g = groups(results, w)
        ns = [n] if n else sorted({k[0] for k in g})
        for size in ns:
            d, p = med(g.get((size, "driftless"), []), metric), med(g.get((size, peer), []), metric)
            if not d or not p:
                lines.append(f"| {desc} | not measured | — |")
                continue
            x = p / d
            lines.append(f"| {desc} | {peer} {fmt(p)} / driftless {fmt(d)} = {x:.1f}× | "
                         f"{met(x >= factor)} |")
    # memory: driftless peak at most a quarter of Flux's two controllers, per workload
    worst = None
    for w in (1, 2, 3, 4, 5):
        g = groups(results, w)
        for (size, tool), rows in g.items():
            if tool != "driftless":
                continue
            for peer in ("flux", "flux-c20"):
                d, p = med(rows, "peak_rss_mib"), med(g.get((size, peer), []), "peak_rss_mib")
                if d and p and (worst is None or d / p > worst[0]):
                    worst = (d / p, w, size, peer, d, p)
    if worst:
        r, w, size, peer, d, p = worst
        lines.append(f"| peak memory at most ¼ of Flux's two controllers (worst case) | workload {w}, N = {size:,}: "
                     f"driftless {d:.0f} MiB / {peer} {p:.0f} MiB = {r:.2f} | {met(r <= 0.25)} |")
    g = groups(results, 1)
    for size in sorted({k[0] for k in g}):
        d, c = med(g.get((size, "driftless"), []), "seconds"), ceiling(g, size)
        if d and c:
            lines.append(f"| workload 1 within 70 % of the ceiling (N = {size:,}) | ceiling {fmt(c)} s / driftless "
                         f"{fmt(d)} s = {c / d:.0%} | {met(c / d >= 0.7)} |")
        v = ceiling(g, size, ("ceiling-v",))
        if d and v:
            lines.append(f"| (context) workload 1 against the validating ceiling, dry-run then apply (N = {size:,}) | "
                         f"ceiling-v {fmt(v)} s / driftless {fmt(d)} s = {v / d:.0%} | — |")
        f = med(g.get((size, "flux"), []), "seconds")
        if size == 1000 and f and c:
            lines.append(f"| (context) the most any tool could be faster than Flux here: flux ÷ ceiling (N = 1,000) | "
                         f"{fmt(f)} / {fmt(c)} = {f / c:.1f}× | — |")
    lines += fleet_targets(results)
    return "\n".join(lines) + "\n"


def met(ok):
    return "yes" if ok else "**no**"


def fleet_targets(results):
    """Issue #25's targets for workloads 4 and 7: driftless's own figures against fixed bounds,
    with workload 4's floor (its objects' requests alone, sent by the ceiling client) beside."""
    lines = []
    g = groups(results, 4)
    for size in sorted({n for n, tool in g if tool == "driftless"}):
        rows = g[(size, "driftless")]
        s, cpu = med(rows, "seconds"), med(rows, "cpu_s")
        other = statistics.median((r["requests"] - r["dry_runs"] - (r.get("phases") or {}).get("apply", [0])[0])
                                  / size for r in rows)
        lines.append(f"| workload 4 (N = {size:,}) in at most 15 s | driftless {fmt(s)} s | {met(s <= 15)} |")
        lines.append(f"| workload 4 (N = {size:,}) in at most 8 CPU seconds | driftless {fmt(cpu)} CPU s | "
                     f"{met(cpu <= 8)} |")
        lines.append(f"| workload 4 (N = {size:,}): at most 5 requests per GitSync besides its objects' dry-runs "
                     f"and applies | driftless {other:.1f} | {met(other <= 5)} |")
        for tool in ("ceiling-v", "ceiling-h1"):
            v = med(g.get((size, tool), []), "seconds")
            if v:
                what = "dry-runs, then applies" if tool == "ceiling-v" else "applies"
                lines.append(f"| (context) workload 4's floor: its {size * 4:,} objects' {what} alone, as one set "
                             f"at concurrency {MANY_CONCURRENCY} ({tool}) | {fmt(v)} s | — |")
    g = groups(results, 7)
    for size in sorted({n for n, tool in g if tool == "driftless"}):
        rows = g[(size, "driftless")]
        s, per, writes = med(rows, "seconds"), med(rows, "requests") / size, max(r["writes"] for r in rows)
        lines.append(f"| workload 7: restarted with {size:,} GitSyncs in sync, each reconciled once in at most "
                     f"10 s with at most 3 requests per GitSync and no write | {fmt(s)} s, {per:.3f} requests "
                     f"per GitSync, {writes} writes | {met(s <= 10 and per <= 3 and writes == 0)} |")
    return lines


def chart(results, path):
    """Log-log line chart of workload 1's median time against N, one line per tool."""
    g = groups(results, 1)
    series = {}
    for (n, tool), rows in g.items():
        series.setdefault(tool, []).append((n, med(rows, "seconds")))
    if not series:
        return False
    ns = sorted({n for n, _ in g})
    ys = [y for s in series.values() for _, y in s if y]
    W, H, L, R, T, B = 640, 400, 70, 150, 40, 50
    lo_x, hi_x = math.log10(min(ns)), math.log10(max(ns)) if max(ns) > min(ns) else math.log10(min(ns)) + 1
    lo_y = math.floor(math.log10(max(min(ys), 1e-3)))
    hi_y = math.ceil(math.log10(max(ys) * 1.01))
    hi_y = hi_y if hi_y > lo_y else lo_y + 1

    def px(n):
        return L + (math.log10(n) - lo_x) / ((hi_x - lo_x) or 1) * (W - L - R)

    def py(y):
        return T + (hi_y - math.log10(max(y, 1e-3))) / (hi_y - lo_y) * (H - T - B)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
           f'font-size="12"><rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="22" font-size="14">Workload 1: first sync of N objects (median seconds, log-log)</text>']
    for e in range(lo_y, hi_y + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{L - 8}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g} s</text>')
    for n in ns:
        x = px(n)
        out.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H - B}" stroke="#eee"/>'
                   f'<text x="{x:.1f}" y="{H - B + 18}" text-anchor="middle">{n:,}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">N objects</text>')
    for i, tool in enumerate([t for t in TOOLS if t in series]):
        pts = sorted(p for p in series[tool] if p[1])
        c = COLORS[tool]
        dash = ' stroke-dasharray="5,4"' if tool.startswith("ceiling") else ""
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="'
                   + " ".join(f"{px(n):.1f},{py(y):.1f}" for n, y in pts) + '"/>')
        out += [f'<circle cx="{px(n):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>' for n, y in pts]
        ly = T + 10 + i * 20
        out.append(f'<line x1="{W - R + 15}" y1="{ly}" x2="{W - R + 40}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/>'
                   f'<text x="{W - R + 46}" y="{ly + 4}">{tool}</text>')
    out.append("</svg>\n")
    with open(path, "w") as f:
        f.write("\n".join(out))
    return True


def profiles(results):
    """Per step of a sync, from the audit log: requests, first start and last end (seconds from
    the start of the workload), for the median repetition of each agent at N = 1,000 (or the
    largest N measured below it)."""
    out = []
    for w in (1, 2, 3):
        g = groups(results, w)
        sizes = [n for n, _ in g if n <= 1000]
        if not sizes:
            continue
        n = max(sizes)
        for tool in ("driftless", "flux", "flux-c20", "argocd", "argocd-ha", "kubectl"):
            rows = [r for r in g.get((n, tool), []) if r.get("phases")]
            if not rows:
                continue
            m = med(rows, "seconds")
            row = min(rows, key=lambda r: abs(r["seconds"] - m))
            out += [f"**Workload {w}, N = {n:,}, {tool}** ({row['seconds']:.2f} s, rep {row['rep']}):", "",
                    "| step (API requests seen by the server) | requests | first starts at s | last ends at s |",
                    "|---|---:|---:|---:|"]
            out += [f"| {k} | {v[0]} | {v[1]:.2f} | {v[2]:.2f} |" for k, v in row["phases"].items()]
            out.append("")
    return "\n".join(out) + "\n"


def write(results_path, doc_path, notes_path):
    data = json.load(open(results_path))
    meta, results = data["meta"], data["results"]
    svg = os.path.splitext(doc_path)[0] + "-w1.svg"
    has_chart = chart(results, svg)
    m = meta
    out = [
        "# Benchmarks",
        "",
        "<!-- Generated by `scripts/bench` (bench/report.py) from its results JSON; the prose after the "
        "tables comes from bench/notes.md. Do not edit by hand: rerun the bench, or "
        "`scripts/bench --report-only` after editing bench/notes.md. -->",
        "",
        "driftless side by side with Flux v2, Argo CD and `kubectl apply --server-side --prune --applyset`, "
        "and with the API server's own server-side-apply ceiling, on the same machine and cluster in one run "
        "(issues #5 and #25). Rerun with `scripts/bench` (see the README).",
        "",
        "## Machine, versions, command",
        "",
        f"- Run: {m['started']} → {m.get('finished', '?')}, `{m['command']}`" + (" (**smoke mode**)" if m["smoke"] else ""),
    ] + [
        f"- Earlier run kept in these results (`--append`): {e['started']} → {e.get('finished')}, `{e['command']}`, "
        f"load {' / '.join(e.get('load_before') or [])} before, {' / '.join(e.get('load_after') or [])} after"
        for e in m.get("earlier_runs", [])
    ] + [
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average (1/5/15 min) {' / '.join(m['load_before'])} before, "
        f"{' / '.join(m.get('load_after', ['?'] * 3))} after (the bench's own cluster and tools count in it: "
        "above about 2 on these 2 cores, something else was running; compare within a run).",
        f"- Cluster: Kubernetes {m['kubernetes']} (`scripts/dev-cluster`: etcd, kube-apiserver with an audit "
        "log, kube-controller-manager, kube-scheduler, kwok with 2 fake nodes), Git over smart HTTP "
        "(lighttpd + `git http-backend`) on 127.0.0.1.",
        f"- driftless {m['driftless']} (binary: see the notes below): `driftless agent` (one process; default concurrency), webhook "
        "`/hook/generic` for notifications.",
        f"- Flux: {m['flux']} (wrapper modules `tools/bench/*/go.mod`), local processes, "
        "one GitRepository + one Kustomization per app (prune on, drift detection as default); `flux` = "
        "default concurrency, `flux-c20` = both controllers with `--concurrent=20`; notifications through "
        "the `reconcile.fluxcd.io/requestedAt` annotation on the GitRepository.",
        f"- Argo CD: {m.get('argocd', '?')} (wrapper module `tools/bench/argocd/go.mod`), application controller + "
        "repo-server + Redis as local processes, one Application per app (automated sync with prune and self-heal, "
        "`ServerSideApply=true`); `argocd` = the install's defaults, `argocd-ha` = the high-availability guide's "
        "settings for ~1,000 applications (see the notes); re-syncs and notifications through the "
        "`argocd.argoproj.io/refresh` annotation (no argocd-server, hence no webhook).",
        f"- kubectl {m['kubectl']}: `KUBECTL_APPLYSET=true kubectl apply --server-side --force-conflicts "
        "--prune --applyset=NAME -n NS -R -f DIR` (namespace created beforehand, untimed: the ApplySet parent "
        "lives in it).",
        f"- Ceiling: `tools/bench/ceiling` (client-go, no rate limit) sending one server-side apply per object at "
        f"concurrency {m['ceiling_concurrency']} (driftless's apply concurrency), Namespace first: `ceiling` multiplexes "
        "them on one HTTP/2 connection (client-go's default), `ceiling-h1` uses one HTTP/1.1 connection per "
        "concurrent request (`--http1`, what kube-rs and so driftless do); \"fraction of ceiling\" uses the "
        "faster of the two. `ceiling-v` (`--validate`) first dry-runs the whole set, then applies it: the "
        "least a tool that validates everything before writing anything (driftless, Flux) must send.",
        "- Repetitions: the `runs` column of each row, the tools taking turns within each repetition "
        "(each repetition starts with the next tool); every pass of the bench that produced these "
        "results is listed above with its command (passes add rows with `--append`).",
        "",
        "How each number is taken: agents are timed from creating the sync object (workload 1), from the "
        "re-sync request (2), from the notification right after the push (3, 5) to the moment the harness "
        "(following a watch opened before it starts the clock, with its own user agent: no polling) sees the "
        "sync object Ready at the commit (Argo CD: Synced at the commit and its last sync operation Succeeded there), "
        "or the changed ConfigMap (3, 5, and each small change of 6; 6's big sync from its creation); kubectl and the ceiling are timed as the command's wall time. API requests are every "
        "finished non-watch request of the tool's user agents in the audit log during the workload. Peak RSS "
        "is VmHWM (reset before each workload), summed over Flux's two controllers and over Argo CD's controller, "
        "repo-server and Redis; CPU seconds include waited-for children (driftless's and the repo-server's `git`). \"driftless ÷ tool\" below 1 means driftless is faster; "
        "\"fraction of ceiling\" is ceiling time ÷ tool time.",
        "",
        "## Targets",
        "",
        targets(results),
    ]
    for w in (1, 2, 3, 4, 5, 6, 7):
        out += [f"## {TITLES[w]}", "", table(results, w)]
        if w == 1 and has_chart:
            out += [f"![workload 1: time vs N]({os.path.basename(svg)})", ""]
    out += ["## Profiles: where the time goes", "",
            "What each tool asked the API server and when, from the audit log (time 0 = start of the workload; "
            "the gap before the first request is fetch and render, the gaps between steps are the tool's own "
            "work).", "", profiles(results)]
    if os.path.exists(notes_path):
        out += [open(notes_path).read()]
    with open(doc_path, "w") as f:
        f.write("\n".join(out))
