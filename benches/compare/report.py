"""Turns the raw outputs of one benches/compare/compare.sh run into the table
(printed and written to results.md) and the chart (benchmarks.png).

Usage: report.py RUN_DIR OUT_DIR
"""

import glob
import json
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "requests": requests,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
        "timeouts": int(sock.group(4)) if sock else 0,
    }


# The API sides: dynagate's users API (the layer as deployed by default, and
# again with local leases, which are opt-in), the Flask baseline under
# gunicorn's sync workers, and the same under gthread workers (threads,
# keep-alive).
SIDES = ("rust", "leased", "flask", "gthread")
SIDE_NAMES = {
    "rust": "dynagate users API",
    "leased": "dynagate users API, local leases",
    "flask": "Flask baseline, sync workers",
    "gthread": "Flask baseline, gthread workers",
}
SHORT = {"rust": "dynagate", "leased": "dynagate, leased", "flask": "Flask (sync)", "gthread": "Flask (gthread)"}


def cpu_per_request(run, side, method, requests):
    """(server, Redis) CPU microseconds per request over the side's wrk runs:
    ticks from /proc summed over the rounds, divided by the requests wrk
    counted."""
    server = redis = 0
    hz = 100
    for path in glob.glob(f"{run}/cpu-{side}-{method}-*.txt"):
        s_ticks, r_ticks, hz = (int(x) for x in open(path).read().split())
        server += s_ticks
        redis += r_ticks
    return server * 1e6 / hz / max(1, requests), redis * 1e6 / hz / max(1, requests)


def api_results(run):
    out = {}
    for side in SIDES:
        for method in ("GET", "POST"):
            runs = [parse_wrk(p) for p in sorted(glob.glob(f"{run}/api-{side}-{method}-*.txt"))]
            requests = sum(r["requests"] for r in runs)
            server_us, redis_us = cpu_per_request(run, side, method, requests)
            out[(side, method)] = {
                "cpu_us": server_us,
                "redis_us": redis_us,
                "rps": statistics.mean(r["rps"] for r in runs),
                "p50": statistics.mean(r["p50"] for r in runs),
                "p99": statistics.mean(r["p99"] for r in runs),
                "rounds": [r["rps"] for r in runs],
                "non2xx": sum(r["non2xx"] for r in runs),
                "socket_errors": sum(r["socket_errors"] for r in runs),
                "requests": sum(r["requests"] for r in runs),
            }
    return out


def limiter_results(run):
    text = open(f"{run}/limiter.txt").read()
    rows = [l for l in text.splitlines() if l.startswith("| ") and not l.startswith("| client")]

    def parse(line):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        return {
            "concurrency": cells[1],
            "rate": float(cells[2]),
            "p50": float(cells[3].split()[0]),
            "p99": float(cells[4].split()[0]),
        }

    dynagate = next(parse(l) for l in rows if l.startswith("| dynagate"))
    # CPU per decision: the JSON line benches/limiter.rs prints last.
    cpu = next(l for l in text.splitlines() if l.startswith("LIMITER_JSON "))
    dynagate.update(json.loads(cpu[len("LIMITER_JSON "):]))
    rb = [parse(l) for l in rows if l.startswith("| redis-benchmark")]
    limits = json.load(open(f"{run}/limits.json"))
    return dynagate, rb, limits


def overhead_results(run, name="overhead"):
    text = open(f"{run}/{name}.txt").read()
    line = next(l for l in text.splitlines() if l.startswith("OVERHEAD_JSON "))
    return json.loads(line[len("OVERHEAD_JSON "):])


def machine(run):
    facts = {}
    for line in open(f"{run}/machine.txt"):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            facts[k] = v
    return facts


def fmt(n):
    return f"{n:,.0f}"


def main():
    run, out = sys.argv[1], sys.argv[2]
    api = api_results(run)
    dg, rb, limits = limiter_results(run)
    ov = overhead_results(run)
    m = machine(run)
    rb_best = max(rb, key=lambda r: r["rate"])

    def met(ok):
        return "**met**" if ok else "**not met**"

    def verdict(ok, *runs):
        # A side that answered errors measured its refusals, not the API:
        # no verdict then.
        bad = [r for r in runs if r["non2xx"] + r["socket_errors"] > 0.01 * r["requests"]]
        if bad:
            return "**no verdict: " + ", ".join(
                f"{(r['non2xx'] + r['socket_errors']) / r['requests']:.0%} errors" for r in bad
            ) + "**"
        return met(ok)

    lines = []
    add = lines.append
    add("| measurement | dynagate | compared with | ratio | target | |")
    add("|---|---:|---:|---:|---|---|")
    for method in ("GET", "POST"):
        r = api[("rust", method)]
        for side in ("flask", "gthread"):
            f = api[(side, method)]
            ratio = r["rps"] / f["rps"]
            add(
                f"| users API {method}, requests/s (p50 / p99) | {fmt(r['rps'])} ({r['p50']:.2f} / {r['p99']:.2f} ms) "
                f"| {SHORT[side]} {fmt(f['rps'])} ({f['p50']:.2f} / {f['p99']:.2f} ms) | {ratio:.2f}x | >= 10x | {verdict(ratio >= 10, r, f)} |"
            )
    for ours, what in (("rust", ""), ("leased", ", local leases (opt-in)")):
        for method in ("GET", "POST"):
            r = api[(ours, method)]
            for side in ("flask", "gthread"):
                f = api[(side, method)]
                less = f["cpu_us"] / r["cpu_us"] if r["cpu_us"] else float("inf")
                # The goal (20x less service CPU than the Flask
                # stack's workers) is set for GET, with the layer as deployed
                # by default; leases are reported beside it.
                judged = method == "GET" and ours == "rust"
                target, said = (">= 20x less", verdict(less >= 20, r, f)) if judged else ("(no target)", "")
                add(
                    f"| users API {method}{what}, server CPU per request (Redis CPU per request) | {r['cpu_us']:,.0f} us ({r['redis_us']:,.0f} us) "
                    f"| {SHORT[side]} workers {f['cpu_us']:,.0f} us ({f['redis_us']:,.0f} us) | {less:.1f}x less | {target} | {said} |"
                )
    ratio = dg["rate"] / limits["decisions_per_s"]
    add(
        f"| limiter, decisions/s (p50 / p99) | {fmt(dg['rate'])} ({dg['p50']:.3f} / {dg['p99']:.3f} ms) "
        f"| Python `limits` {fmt(limits['decisions_per_s'])} ({limits['p50_ms']:.3f} / {limits['p99_ms']:.3f} ms) | {ratio:.2f}x | >= 10x | {met(ratio >= 10)} |"
    )
    for what, key in (("client", "client_cpu_us_per_decision"), ("Redis", "redis_cpu_us_per_decision")):
        less = limits[key] / dg[key] if dg[key] else float("inf")
        add(
            f"| limiter, {what} CPU per decision | {dg[key]:.2f} us | Python `limits` {limits[key]:.2f} us "
            f"| {less:.1f}x less | (no target) | |"
        )
    ratio = dg["rate"] / rb_best["rate"]
    add(
        f"| limiter vs the physical limit | {fmt(dg['rate'])} "
        f"| redis-benchmark EVALSHA {fmt(rb_best['rate'])} ({rb_best['concurrency']}) | {ratio:.2f}x | >= 0.85x | {met(ratio >= 0.85)} |"
    )
    sdk, bare, gated = ov["sdk"], ov["sdk_no_retries"], ov["dynagate"]
    paired = ov["paired_overhead_percent"]
    add(
        f"| resilience overhead, unthrottled ops/s (p50 / p99) | {fmt(gated['ops_per_s'])} ({gated['p50_ms']:.2f} / {gated['p99_ms']:.2f} ms) "
        f"| plain SDK {fmt(sdk['ops_per_s'])} ({sdk['p50_ms']:.2f} / {sdk['p99_ms']:.2f} ms) "
        f"| overhead {paired:+.1f}% (median of {ov['rounds']} paired passes, range {ov['paired_overhead_min_percent']:+.0f}..{ov['paired_overhead_max_percent']:+.0f}%; whole run {ov['overhead_percent']:+.1f}%) "
        f"| overhead <= 5% | {met(paired <= 5)} |"
    )
    add(
        f"| resilience overhead, client CPU per operation | {gated['cpu_us_per_op']:.1f} us "
        f"| plain SDK {sdk['cpu_us_per_op']:.1f} us (SDK with retries off {bare['cpu_us_per_op']:.1f} us) "
        f"| {ov['cpu_overhead_percent']:+.1f}% ({ov['cpu_overhead_vs_no_retries_percent']:+.1f}% vs retries off) | (no target) | |"
    )
    add(
        f"| resilience overhead, the retry loop alone (no server) | {ov['loop_ns_per_call']:,.0f} ns per call "
        f"| plain SDK's client CPU per operation {sdk['cpu_us_per_op']:.1f} us | {ov['loop_percent_of_sdk_cpu']:.2f}% | (no target) | |"
    )
    table = "\n".join(lines)

    details = []
    d = details.append
    d("| run | requests | non-2xx | socket errors | requests/s per round | server CPU / request | Redis CPU / request |")
    d("|---|---:|---:|---:|---|---:|---:|")
    for (side, method), r in api.items():
        d(
            f"| {SIDE_NAMES[side]} {method} | {r['requests']:,} | {r['non2xx']:,} | {r['socket_errors']:,} | "
            + ", ".join(fmt(x) for x in r["rounds"])
            + f" | {r['cpu_us']:,.0f} us | {r['redis_us']:,.0f} us |"
        )
    d("")
    d("| limiter client | concurrency | decisions/s | p50 | p99 | client CPU / decision | Redis CPU / decision |")
    d("|---|---|---:|---:|---:|---:|---:|")
    d(
        f"| dynagate `RedisLimiter::check` (GCRA, one EVALSHA) | {dg['concurrency']} | {fmt(dg['rate'])} | {dg['p50']:.3f} ms | {dg['p99']:.3f} ms "
        f"| {dg['client_cpu_us_per_decision']:.2f} us | {dg['redis_cpu_us_per_decision']:.2f} us |"
    )
    for r in rb:
        d(f"| redis-benchmark EVALSHA, same script | {r['concurrency']} | {fmt(r['rate'])} | {r['p50']:.3f} ms | {r['p99']:.3f} ms | | |")
    d(
        f"| Python `limits` {limits['strategy']} `hit` (RedisStorage) | {limits['processes']} processes x {limits['threads']} threads "
        f"| {fmt(limits['decisions_per_s'])} | {limits['p50_ms']:.3f} ms | {limits['p99_ms']:.3f} ms "
        f"| {limits['client_cpu_us_per_decision']:.2f} us | {limits['redis_cpu_us_per_decision']:.2f} us |"
    )
    d("")
    d(
        "CPU time is measured over the measured window only: a server's and Redis's from /proc/PID/stat (every process "
        "of a gunicorn server: master and workers), divided by the requests wrk counted; the limiter's client from the "
        "process's own CPU clock (the Rust bench: every thread; Python: each process's `time.process_time()`, summed), "
        "Redis's from `INFO cpu` (used_cpu_sys + used_cpu_user), per decision. Redis is this run's own."
    )
    d("")
    d("| DynamoDB client, unthrottled | ops/s | p50 | p99 | client CPU / op | errors |")
    d("|---|---:|---:|---:|---:|---:|")
    for name, r in (
        ("plain `aws_sdk_dynamodb::Client` (SDK default: standard retry mode)", sdk),
        ("the same SDK client, retries off (what dynagate wraps)", bare),
        ("dynagate `ResilientClient` (default `RetryPolicy`)", gated),
    ):
        d(f"| {name} | {fmt(r['ops_per_s'])} | {r['p50_ms']:.3f} ms | {r['p99_ms']:.3f} ms | {r['cpu_us_per_op']:.1f} us | {r['errors']} |")
    d("")
    d(
        f"dynagate's overhead (positive: dynagate is slower or costs more): throughput {paired:+.1f}% vs the plain SDK "
        f"(median of passes; whole run {ov['overhead_percent']:+.1f}%), "
        f"{ov['overhead_vs_no_retries_percent']:+.1f}% vs the same SDK client with retries off (whole run); "
        f"client CPU per operation {ov['cpu_overhead_percent']:+.1f}% vs the plain SDK and {ov['cpu_overhead_vs_no_retries_percent']:+.1f}% vs retries off; "
        f"the retry loop alone {ov['loop_ns_per_call']:,.0f} ns per call."
    )
    d("")
    # The bounds the 10x targets meet on this machine, from this same run:
    # DynamoDB Local's rate for a bare SDK client doing only that operation.
    for method, writes, op in (("GET", 0, "GetItem"), ("POST", 100, "PutItem")):
        f = max((api[(side, method)] for side in ("flask", "gthread")), key=lambda x: x["rps"])
        r = api[("rust", method)]
        bound = overhead_results(run, f"bound-{writes}")["sdk"]["ops_per_s"]
        d(
            f"10x the faster Flask baseline's {method} would be {fmt(10 * f['rps'])} requests/s, {10 * f['rps'] / bound:.0%} of the "
            f"{fmt(bound)} {op}/s DynamoDB Local served a bare SDK client (only {op}, {m['wrk_connections']} tasks, no HTTP server, "
            f"no Redis, no wrk on the cores); dynagate's API served {r['rps'] / bound:.0%} of it."
        )
    d(
        f"10x Python `limits` would be {fmt(10 * limits['decisions_per_s'])} decisions/s; "
        f"redis-benchmark's best EVALSHA form reached {fmt(rb_best['rate'])} calls/s on this Redis."
    )
    detail = "\n".join(details)

    setup = (
        f"Machine: {m['cpu']}, {m['nproc']} cores, {m['mem_gib']} GiB, kernel {m['kernel']}, {m['os']}; "
        f"{m['date']}. {m['rustc']}; {m['python']} ({m['pkgs']}); Redis {m['redis']}; "
        f"DynamoDB Local {m.get('dynamodb_local', '')}; wrk {m['wrk']}. "
        f"Everything (servers, DynamoDB Local, Redis, the load generator) shares the same cores. "
        f"API: wrk -t2 -c{m['wrk_connections']} -d{m['wrk_seconds']}s per run, {m['api_rounds']} alternating rounds per side "
        f"(figures are the means), the Flask baseline under gunicorn with {m['gunicorn_workers']} sync workers, "
        f"and again with {m['gunicorn_workers']} gthread workers of {m.get('gunicorn_threads', '4')} threads each (keep-alive). "
        f"Overhead: {ov['concurrency']} tasks, {ov['rounds']} rotating rounds of {ov['round_seconds']} s per client."
    )
    print()
    print(table)
    print()
    print(detail)
    print()
    print(setup)

    os.makedirs(out, exist_ok=True)
    with open(f"{out}/results.md", "w") as f:
        f.write("# dynagate comparison benchmarks\n\n")
        f.write("Produced by `benches/compare/compare.sh` (one run).\n\n")
        f.write(table + "\n\n" + detail + "\n\n" + setup + "\n")

    fig, axes = plt.subplots(1, 5, figsize=(21, 4.6))
    colors = {"dynagate": "#1f77b4", "other": "#ff7f0e", "other2": "#ffbb78", "limit": "#7f7f7f"}
    side_colors = {"rust": colors["dynagate"], "leased": "#aec7e8", "flask": colors["other"], "gthread": colors["other2"]}
    xs = range(2)
    w = 0.2

    def api_bars(ax, field, title):
        for i, side in enumerate(SIDES):
            ax.bar([x + (i - (len(SIDES) - 1) / 2) * w for x in xs], [api[(side, m_)][field] for m_ in ("GET", "POST")], w,
                   label=SHORT[side], color=side_colors[side])
        ax.set_xticks(list(xs), ["GET", "POST"])
        ax.set_title(title)

    api_bars(axes[0], "rps", "users API, requests/s")
    axes[0].legend()
    api_bars(axes[1], "p99", "users API, p99 latency (ms)")
    api_bars(axes[2], "cpu_us", "users API, server CPU per request (us)")
    ax = axes[3]
    names = ["dynagate", "Python\nlimits"] + [
        "redis-bench\n" + ("pipelined" if "pipeline" in r["concurrency"] else r["concurrency"].replace(" connections", " conns"))
        for r in rb
    ]
    values = [dg["rate"], limits["decisions_per_s"]] + [r["rate"] for r in rb]
    ax.bar(range(len(values)), values, color=[colors["dynagate"], colors["other"]] + [colors["limit"]] * len(rb))
    ax.set_xticks(range(len(values)), names, fontsize=8)
    ax.set_title("limiter, decisions/s")
    ax = axes[4]
    ax.bar([0, 1, 2], [sdk["ops_per_s"], bare["ops_per_s"], gated["ops_per_s"]], color=[colors["limit"], colors["limit"], colors["dynagate"]])
    ax.set_xticks([0, 1, 2], ["plain SDK", "SDK,\nretries off", "dynagate"])
    ax.set_title(f"unthrottled ops/s\n(overhead {paired:+.1f}%, median of passes)")
    fig.suptitle(f"dynagate benchmarks, {m['nproc']} cores, {m['date']}")
    fig.tight_layout()
    fig.savefig(f"{out}/benchmarks.png", dpi=110)
    print(f"\nwrote {out}/results.md and {out}/benchmarks.png")


if __name__ == "__main__":
    main()
