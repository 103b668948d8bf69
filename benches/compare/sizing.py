"""Sizing past one machine, computed from measured result files.

Usage: python3 benches/compare/sizing.py [RESULTS_DIR] [README]

Reads what the benches wrote (never a typed figure):
- benches/results/users_api_wrk.md: the service's and Redis's CPU time per
  request with the rate-limit layer on (medians of the paced load, the one
  the layer's cost is judged on, and of the saturated load), and the Redis
  round trips per request;
- benches/results/cluster_spread.md, when present: how evenly the local
  3-master Redis Cluster spread the decisions (the largest master's share)
  and the script calls per request on a cluster.

Writes benches/results/sizing.md (with the inputs it used and where they came
from) and rewrites the README between `<!-- sizing:begin -->` and
`<!-- sizing:end -->`.
"""

import datetime
import math
import os
import re
import sys

TARGETS = [10_000, 100_000, 1_000_000]
# Plan each core and each Redis shard for this share of its time: the rest is
# headroom for bursts, failover and the work the bench did not measure
# (logging, TLS, the real network).
UTILISATION = 0.5


def median_row(text, section, row):
    """The 'layer on' column of ROW in the medians table of SECTION."""
    start = text.find(section)
    if start < 0:
        return None
    medians = text.find("Median over", start)
    m = re.search(r"^\| " + re.escape(row) + r" \| ([\d.]+) \| ([\d.]+) \|", text[medians:], re.M)
    return float(m.group(1)) if m else None


def header_field(text, name):
    m = re.search(r"^- " + re.escape(name) + r": (.+)$", text, re.M)
    return m.group(1).strip() if m else "unknown"


def cluster_figures(path):
    """(busiest master's share of phase 1's script calls in %, script calls per
    request of phase 2, when the run started) or Nones."""
    if not os.path.exists(path):
        return None, None, None
    text = open(path).read()
    phase1 = text[text.find("Phase 1"):text.find("Phase 2")]
    shares = [float(s) for s in re.findall(r"^\| [\d.]+:\d+ \| [^|]+\| \d+ \| ([\d.]+)% \|", phase1, re.M)]
    calls = re.search(r"Script calls per request: ([\d.]+) measured", text)
    started = header_field(text, "started")
    return (max(shares) if shares else None), (float(calls.group(1)) if calls else None), started


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "benches/results"
    readme = sys.argv[2] if len(sys.argv) > 2 else "README.md"
    wrk_path = os.path.join(results, "users_api_wrk.md")
    text = open(wrk_path).read()
    section = "### Paced"
    service = median_row(text, section, "service CPU µs/request")
    redis = median_row(text, section, "Redis CPU µs/request")
    trips = median_row(text, section, "Redis round trips/request (script calls)")
    sat_service = median_row(text, "### Saturated", "service CPU µs/request")
    sat_redis = median_row(text, "### Saturated", "Redis CPU µs/request")
    if None in (service, redis, trips):
        sys.exit(f"sizing: {wrk_path} has no paced medians: run benches/compare/users_api_wrk.sh first")
    share, cluster_calls, cluster_started = cluster_figures(os.path.join(results, "cluster_spread.md"))
    # A master gets its share of the decisions, so the busiest one sets the
    # shard count: with an even spread over 3 masters that is 1/3.
    skew = (share / 100 * 3) if share else 1.0

    lines = []
    say = lines.append
    say(f"Inputs, from `{wrk_path}` (started {header_field(text, 'started')}, {header_field(text, 'machine')}):")
    say("")
    say(f"- service CPU per request, layer on: {service:.1f} µs paced (used), {sat_service or float('nan'):.1f} µs saturated;")
    say(f"- Redis CPU per request (one script call deciding every check): {redis:.1f} µs paced (used), {sat_redis or float('nan'):.1f} µs saturated;")
    say(f"- Redis round trips per request: {trips:.2f}.")
    if share:
        say(f"- Redis Cluster (`{results}/cluster_spread.md`, started {cluster_started}): over 10,000 subjects the busiest of 3 masters ran {share:.1f}% of the script calls (an even spread is 33.3%), which sets the shard count below"
            + (f"; a request of three checks on three slots took {cluster_calls:.2f} script calls there." if cluster_calls else "."))
    else:
        say("- No `cluster_spread.md`: an even spread over the shards is assumed.")
    say("")
    say(f"Assumptions: every core and every Redis shard planned at {UTILISATION:.0%} of its time; one Redis round trip per request"
        " on a single Redis. On a cluster the checks of one slot go in one call: a key's limits, its route policies and its"
        " read-unit reservation share the key's slot, the per-address ceiling has its own, so a keyed request is two calls"
        " there, splitting the same script work (the per-call overhead Redis adds is not in this figure); Redis executes scripts on one thread, so"
        " a shard is one core of script time; the service scales across cores and instances with no shared state but Redis;"
        " DynamoDB's own capacity is sized separately (the capacity gate keeps the fleet under it).")
    say("")
    say("| requests/s | service cores | Redis CPU (cores) | Redis Cluster shards (masters) |")
    say("|---:|---:|---:|---:|")
    for rps in TARGETS:
        cores = rps * service / 1e6 / UTILISATION
        redis_cores = rps * redis / 1e6 / UTILISATION
        shards = max(1, math.ceil(redis_cores * skew))
        say(f"| {rps:,} | {math.ceil(cores)} | {redis_cores:.1f} | {shards} |")
    say("")
    say("Redis's CPU per request is the script's: it decides five checks (the address ceiling, the key's two limits, a route"
        " policy and the read-unit reservation) in one call. Fewer checks per request cost Redis proportionally less.")
    body = "\n".join(lines) + "\n"

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    out = os.path.join(results, "sizing.md")
    with open(out, "w") as f:
        f.write("# Sizing past one machine\n\n")
        f.write("Written by `benches/compare/sizing.py` from the result files named below; reproduce with:\n\n")
        f.write("    python3 benches/compare/sizing.py\n\n")
        f.write(f"- written: {now} UTC\n\n")
        f.write(body)
    if os.path.exists(readme):
        doc = open(readme).read()
        begin, end = "<!-- sizing:begin -->", "<!-- sizing:end -->"
        if begin in doc and end in doc:
            head, rest = doc.split(begin, 1)
            _, tail = rest.split(end, 1)
            generated = f"{begin}\n<!-- generated by benches/compare/sizing.py from benches/results/sizing.md; do not edit -->\n\n{body}\n{end}"
            open(readme, "w").write(head + generated + tail)
    print(body, end="")
    print(f"sizing: written to {out}")


if __name__ == "__main__":
    main()
