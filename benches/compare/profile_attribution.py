"""Where a process's CPU went, from `perf script` output of a call-graph
profile (`perf record --call-graph dwarf`): each sample is given to the
first frame, from the leaf up, that belongs to a known part (dynagate's own
code, the AWS SDK, redis-rs, hyper, axum/tower, tokio, metrics, tracing), so
an allocation or a syscall counts for the code that asked for it. Samples
whose stack names none of them (the kernel's work of a thread in no known
frame, an unwound stack cut short) are `other`.

    perf script -F tid,ip,sym -i perf.data | python3 profile_attribution.py

Prints a Markdown table: part, share of the samples, and, given
--per-request-us, that share of the CPU per request.
"""

import argparse
import collections
import re
import sys

# First match wins, so dynagate's parts come before the crates they call.
PARTS = [
    ("dynagate: rate-limit layer", r"dynagate::http::(service|checks|charge|response|headers|client_ip|auth|lockout|penalty|policy)"),
    ("dynagate: limiter", r"dynagate::limiter"),
    ("dynagate: direct GetItem (its JSON; signing counts as the SDK's)", r"dynagate::direct_get"),
    ("dynagate: repository, retries, capacity", r"dynagate::(repository|client|retry|capacity|breaker|operation|usage)"),
    ("users API (the example's handlers and middlewares)", r"users_api::"),
    ("AWS SDK (serialise, sign, send, parse)", r"aws_smithy|aws_sdk|aws_sigv4|aws_runtime|aws_credential"),
    ("redis-rs", r"redis::|combine::"),
    ("metrics", r"metrics"),
    ("tracing", r"tracing"),
    ("axum, tower (routing, middleware plumbing)", r"axum|tower"),
    ("hyper server, dynagate::http::serve", r"dynagate::http::(serve|conn_limits|stack_errors)|hyper::proto::h1::role::Server|hyper::server"),
    ("hyper (client and connection I/O)", r"hyper"),
    ("tokio (scheduler, timers, socket I/O)", r"tokio::"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in PARTS]


def samples(lines):
    """Each sample's frames, leaf first: `perf script` puts a sample's
    header on a line of its own and each frame on a line after it that
    starts with a tab (`ADDRESS SYMBOL`)."""
    frames = None
    for line in lines:
        if line.startswith("\t"):
            if frames is not None:
                address_and_symbol = line.strip().split(" ", 1)
                frames.append(address_and_symbol[-1])
        elif line.strip():
            if frames:
                yield frames
            frames = []
    if frames:
        yield frames


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-request-us", type=float)
    args = parser.parse_args()
    counts = collections.Counter()
    total = 0
    for frames in samples(sys.stdin):
        total += 1
        part = "other"
        for frame in frames:
            part = next((name for name, pattern in COMPILED if pattern.search(frame)), None)
            if part:
                break
        counts[part or "other"] += 1
    if total == 0:
        sys.exit("no samples in the perf script output")
    header = "| part | share of the samples |" + (" CPU per request |" if args.per_request_us else "")
    print(header)
    print("|---|---:|" + ("---:|" if args.per_request_us else ""))
    for part, n in counts.most_common():
        share = n / total
        row = f"| {part} | {100 * share:.1f}% |"
        if args.per_request_us:
            row += f" {share * args.per_request_us:.0f} us |"
        print(row)
    print(f"\n{total} samples.")


if __name__ == "__main__":
    main()
