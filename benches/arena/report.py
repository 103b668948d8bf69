"""The abuse arena's result files, from one run of benches/arena/arena.sh.

    report.py RUN_DIR RESULTS_DIR README

Reads RUN_DIR/dynagate.json and RUN_DIR/flask.json (the arena binary's
summaries) and RUN_DIR/facts.txt (command, machine, versions, capacities);
writes RESULTS_DIR/arena.md and RESULTS_DIR/arena.png, and rewrites what
README holds between <!-- arena:begin --> and <!-- arena:end -->. Every
figure and every MET/MISSED comes from the summaries: nothing is typed in.
"""

import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SIDES = ("dynagate", "flask")
BEGIN, END = "<!-- arena:begin -->", "<!-- arena:end -->"


def facts(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.{digits}f}"
    return f"{int(value):,}"


def pct(value, digits=2):
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}x"


def peak(summary, field):
    return max((s[field] for s in summary["users_table"]["timeline"]), default=None)


def rows(d, f, capacity):
    """(label, dynagate value, flask value, dynagate figure, flask figure) per row."""
    def both(get, show=fmt):
        a, b = get(d), get(f)
        return show(a), show(b), a, b

    read_cap, write_cap = capacity
    secs = lambda s: s["seconds"]  # noqa: E731
    return [
        ("legitimate requests", *both(lambda s: s["legit"]["requests"])),
        ("legitimate requests sent per request scheduled (the next waits for the last answer)",
         *both(lambda s: s["legit"]["requests"] / s["legit_scheduled"], pct)),
        ("legitimate success rate (2xx + deserved 4xx)", *both(lambda s: s["legit"]["success_rate"], pct)),
        ("time to outcome p50, ms (all legitimate requests)", *both(lambda s: s["legit"]["p50_ms"])),
        ("time to outcome p99, ms (all legitimate requests)", *both(lambda s: s["legit"]["p99_ms"])),
        ("5xx answers, all requests", *both(lambda s: s["server_errors"]["total"])),
        ("5xx answers to legitimate requests", *both(lambda s: s["server_errors"]["legit"])),
        ("throttles at the proxy, users table", *both(lambda s: s["users_table"]["throttled"])),
        ("throttles at the proxy, API keys table", *both(lambda s: s["keys_table"]["throttled"])),
        (f"read units/s consumed, users table, mean (provisioned {read_cap:g})",
         *both(lambda s: s["users_table"]["read_units"] / secs(s))),
        ("read units/s, highest 1 s sample", *both(lambda s: peak(s, "read_units_per_second"))),
        (f"write units/s consumed, users table, mean (provisioned {write_cap:g})",
         *both(lambda s: s["users_table"]["write_units"] / secs(s))),
        ("write units/s, highest 1 s sample", *both(lambda s: peak(s, "write_units_per_second"))),
        ("DynamoDB key lookups per 100 invalid-key requests (invalid keys alone)",
         *both(lambda s: s["invalid_phase"]["lookups_per_100_requests"], lambda v: fmt(v, 2))),
        ("key lookups during the main phase, every cause", *both(lambda s: s["keys_table"]["lookups"])),
        ("service CPU per legitimate request, µs", *both(lambda s: s["cpu"]["service_us_per_legit_request"], lambda v: fmt(v, 0))),
        ("service CPU per request answered, attacks included, µs",
         *both(lambda s: s["cpu"]["service_us_per_request"], lambda v: fmt(v, 0))),
        ("service CPU, seconds", *both(lambda s: s["cpu"]["service_seconds"])),
        ("load generator's share of the machine's CPU", *both(lambda s: s["cpu"]["generator_share_of_machine"], lambda v: pct(v, 1))),
    ]


def goals(d, capacity):
    read_cap, write_cap = capacity
    rate = d["legit"]["success_rate"] or 0.0
    read_peak = peak(d, "read_units_per_second") or 0.0
    write_peak = peak(d, "write_units_per_second") or 0.0
    samples = d["users_table"]["timeline"]
    above = sum(1 for x in samples
                if x["read_units_per_second"] > read_cap or x["write_units_per_second"] > write_cap)
    lookups = d["invalid_phase"]["lookups_per_100_requests"]
    verdict = lambda ok: "MET" if ok else "MISSED"  # noqa: E731
    return [
        ("legitimate success rate >= 99.5%", pct(rate), verdict(rate >= 0.995)),
        ("zero 5xx", fmt(d["server_errors"]["total"]), verdict(d["server_errors"]["total"] == 0)),
        ("consumed capacity never above provisioned (each 1 s sample, users table)",
         f"peak {read_peak:.1f} RCU/s of {read_cap:g}, {write_peak:.1f} WCU/s of {write_cap:g}; "
         f"{above} of {len(samples)} samples above",
         verdict(read_peak <= read_cap and write_peak <= write_cap)),
        ("at most 1 DynamoDB read per 100 invalid-key requests", fmt(lookups, 2),
         verdict(lookups is not None and lookups <= 1.0)),
    ]


def table(lines, header):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return out


def main_table(d, f, capacity, calm=None):
    """The two sides and their ratio; `calm`, the Flask run without the slow
    connections, as a last column when there is one."""
    header = ["", "dynagate (3 instances)", "Flask (gunicorn)", "dynagate / Flask"]
    lines = [(label, a, b, ratio(x, y)) for label, a, b, x, y in rows(d, f, capacity)]
    if calm is not None:
        header.append("Flask, no slow connections")
        lines = [line + (c,) for line, (_, _, c, _, _) in zip(lines, rows(d, calm, capacity))]
    return table(lines, header)


def failure_table(summaries):
    lines = []
    for side, s in summaries:
        for why, n in sorted(s["legit"]["failures_by_why"].items(), key=lambda kv: -kv[1]):
            lines.append((side, why, fmt(n)))
        timeouts = s["legit"]["by_status"].get("none", 0)
        if timeouts:
            lines.append((side, "no answer within 10 s (or a connection error)", fmt(timeouts)))
    return table(lines or [("–", "no failure", "0")], ["side", "legitimate failures: answer", "count"])


def goal_table(d, capacity):
    return table(goals(d, capacity), ["goal (dynagate)", "measured", "verdict"])


def attack_table(summaries):
    lines = []
    for name in summaries[0][1]["attacks"]:
        for side, s in summaries:
            a = s["attacks"][name]
            statuses = ", ".join(f"{k}: {v:,}" for k, v in a["by_status"].items())
            lines.append((name, side, fmt(a["sent"]), fmt(a["skipped"]), statuses))
    for side, s in summaries:
        slow = s["slowloris"]
        lines.append(("slowloris", side, fmt(slow["opened"]), "–",
                      f"closed by the server: {slow['closed_by_server']:,}, mean held "
                      f"{fmt(slow['mean_seconds_held_before_close'])} s, refused: {slow['refused']:,}"))
    return table(lines, ["attack", "side", "sent", "skipped (in flight cap)", "answers by status"])


def gate_table(path):
    """The capacity gate's metrics of the three instances: counters (and
    histograms' sums and counts) summed, gauges listed per instance."""
    if not path.exists():
        return []
    summed, gauges = {}, {}
    for line in path.read_text().splitlines():
        match = re.match(r"^(\w+)(\{[^}]*\})?\s+(\S+)$", line)
        if not match or match.group(1).endswith("_bucket") or 'quantile="' in (match.group(2) or ""):
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name.endswith(("_total", "_sum", "_count")):
            summed[(name, labels)] = summed.get((name, labels), 0.0) + value
        else:
            gauges.setdefault((name, labels), []).append(value)
    lines = [(f"`{n}{l}`", "summed over the instances", fmt(v, 3)) for (n, l), v in sorted(summed.items())]
    lines += [(f"`{n}{l}`", "per instance", ", ".join(fmt(x, 1) for x in v)) for (n, l), v in sorted(gauges.items())]
    return table(lines, ["dynagate capacity gate metric, at the end of the run", "", "value"])


def chart(d, f, calm, path):
    """Top: the share of legitimate requests that succeeded, per second.
    Bottom: legitimate successes per second against what the population
    scheduled: a closed-loop client of a slow service sends less, so a high
    share can hide a low count."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.4), sharex=True)
    lines = [(d, "dynagate users API (3 instances)", "#1f77b4"), (f, "Flask + gunicorn baseline", "#d62728")]
    if calm is not None:
        lines.append((calm, "Flask, without the slow connections", "#ff9896"))
    for summary, label, colour in lines:
        # Whole seconds of the phase: answers that end after it fill a last,
        # partial second.
        seconds = summary["legit"]["per_second"][: int(summary["phase_seconds"])]
        xs = [i for i, s in enumerate(seconds) if s["requests"]]
        top.plot(xs, [100.0 * seconds[i]["successes"] / seconds[i]["requests"] for i in xs],
                 label=label, color=colour, linewidth=1.6)
        bottom.plot(range(len(seconds)), [s["successes"] for s in seconds], color=colour, linewidth=1.6)
    scheduled = d["legit_scheduled"] / d["phase_seconds"]
    bottom.axhline(scheduled, color="grey", linestyle="--", linewidth=1,
                   label=f"scheduled by the population ({scheduled:.0f}/s)")
    top.set_ylim(0, 102)
    top.set_ylabel("succeeded, % of sent")
    top.set_title("The abuse arena: legitimate requests per second, under every attack at once")
    top.legend(loc="lower left", fontsize=8)
    bottom.set_ylabel("successes per second")
    bottom.set_xlabel("second of the main phase")
    bottom.legend(loc="center right", fontsize=8)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(run_dir, results_dir, readme):
    run_dir, results_dir, readme = Path(run_dir), Path(results_dir), Path(readme)
    d = json.loads((run_dir / "dynagate.json").read_text())
    f = json.loads((run_dir / "flask.json").read_text())
    fx = facts(run_dir / "facts.txt")
    calm_path = run_dir / "flask-calm.json"
    calm = json.loads(calm_path.read_text()) if calm_path.exists() else None
    summaries = [("dynagate", d), ("flask", f)] + ([("flask, no slow connections", calm)] if calm else [])
    capacity = tuple(float(x) for x in fx["users_capacity"].split(","))
    chart(d, f, calm, results_dir / "arena.png")
    met = [g for g in goals(d, capacity) if g[2] == "MET"]
    summary_line = f"dynagate met {len(met)} of {len(goals(d, capacity))} goals: " + (
        "; ".join(g[0] for g in goals(d, capacity) if g[2] == "MISSED") or "none") + " missed."
    doc = [
        "# The abuse arena",
        "",
        "Written by `benches/arena/arena.sh` at the end of a run; reproduce with:",
        "",
        f"    {fx['command']}",
        "",
        f"- started: {fx['started']}",
        f"- machine: {fx['machine']}",
        f"- load average (1, 5, 15 min): {fx['load']}",
        f"- versions: {fx['versions']}",
        f"- capacity (fault proxy, 300 s burst bank starting empty): users table {fx['users_capacity']} RCU,WCU/s, "
        f"API keys table {fx['keys_capacity']}",
        f"- sides: dynagate's users API, {d['instances']} release instances sharing Redis, capacity gate on; "
        f"Flask baseline under gunicorn, {fx['flask_workers']} sync workers",
        f"- main phase: {d['seconds']:.1f} s (dynagate), {f['seconds']:.1f} s (Flask); before it, invalid keys alone for "
        f"{d['invalid_phase']['seconds']:g} s",
        "",
        summary_line,
        "",
        *goal_table(d, capacity),
        "",
        *main_table(d, f, capacity, calm),
        "",
        "![legitimate success rate per second](arena.png)",
        "",
        "## Why legitimate requests failed",
        "",
        *failure_table(summaries),
        "",
        "## dynagate's capacity gate",
        "",
        "What the three instances' `/metrics` said when the main phase ended (the seeding and the invalid-key "
        "phase included): units the gate estimated against those DynamoDB reported consumed, refusals "
        "(`over`), shed requests and the rate it keeps per table and direction.",
        "",
        *(gate_table(run_dir / "dynagate-gate.txt") or ["(no gate metrics in this run)"]),
        "",
        "## The attacks, as each side answered them",
        "",
        *attack_table(summaries),
        "",
        "## Definitions",
        "",
        f"- Legitimate population: {fx['legit_keys']} keys at the arena's `--legit-rate` each, from four client "
        "addresses per key, mix `get=55,post=15,put=20,list=10` against dynagate; the Flask baseline serves only "
        "GET of one user and POST, so its mix is `get=85,post=15`. 5% of the GETs ask for a user that does not "
        "exist. A key waits out any `Retry-After` before its next request and never retries.",
        "- Success: a 2xx, or the 404 of a GET that asked for a missing user (the only 4xx a legitimate request "
        "deserves here). Every other answer, and no answer within 10 s, is a failure.",
        "- Time to outcome: from sending to the end of the answer (or to the failure), over every legitimate "
        "request, failures included.",
        "- Units consumed and throttles: the fault proxy's counters (`/_fault/stats`) for the side's users table, "
        "sampled each second; the highest sample is the busiest second.",
        "- Key lookups per 100 invalid-key requests: GetItem calls on the API keys table at the proxy during a "
        "phase where invalid keys (a new random well-formed key per request, from the rotation's addresses) are "
        "the only traffic, divided by the requests sent then. In the main phase the same table also serves the "
        "legitimate keys' revalidations, so that phase's count is shown apart.",
        "- CPU: user + system time from `/proc/PID/stat` of the three instances (dynagate) or of the gunicorn "
        "master and its workers, replaced workers included (Flask), over the main phase, divided by the "
        "legitimate requests; the generator's own share is its CPU time over the phase's wall time times the "
        "cores.",
        "- Flask, no slow connections: the same Flask run again with `--slowloris 0`, when the run includes it "
        "(`ARENA_FLASK_CALM=on`, the default): a sync gunicorn worker waits as long as a client takes to send "
        "its headers, so the slow connections alone decide the Flask column; this one shows the rest.",
        "- The stolen key belongs to a separate owner (not in the legitimate population); the attacker's own keys "
        "(list flood, create flood, replay storm) are valid keys issued like any other.",
    ]
    (results_dir / "arena.md").write_text("\n".join(doc) + "\n")

    text = readme.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{readme}: no {BEGIN} ... {END} markers: add them where the arena's table belongs")
    block = [
        BEGIN,
        f"Generated by `./dev.sh arena` ({fx['started']}, {fx['machine']}; details and every attack's "
        "answers in [benches/results/arena.md](benches/results/arena.md)). " + summary_line,
        "",
        *goal_table(d, capacity),
        "",
        *main_table(d, f, capacity, calm),
        "",
        "![legitimate success rate per second, dynagate and the Flask baseline](benches/results/arena.png)",
        END,
    ]
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: "\n".join(block), text, count=1))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: report.py RUN_DIR RESULTS_DIR README")
    main(*sys.argv[1:])
