"""Decisions per second of the Python `limits` library (Flask-Limiter's
engine) against one Redis: the Python side of dynagate's limiter benchmark.

Each decision is `FixedWindowRateLimiter.hit` (Flask-Limiter's default
strategy: one EVALSHA of limits' incr_expire script) with RedisStorage, on one
of 10,000 subjects, one limit of 100 per second, cost 1 -- the same subjects,
limit size and Redis as `benches/limiter.rs`.

Concurrency: dynagate runs 32 tokio tasks on a 2-thread runtime over one
multiplexed connection. Python threads cannot run Python code in parallel
(GIL), so this runs PROCESSES processes x THREADS threads each (default:
one process per core, 32 requests in flight in total), each process with its
own redis-py connection pool (one connection per thread): the most favourable
way to spend the same cores and the same number of requests in flight.

CPU time per decision, as benches/limiter.rs measures it: the client's (each
process's own CPU time over the measured window, every thread, summed over the
processes) and Redis's (INFO cpu: used_cpu_sys + used_cpu_user, before and
after; another client of the same Redis meanwhile adds to it).

Usage: limits_bench.py [--seconds 5] [--processes N] [--threads N] [--strategy fixed-window]
Prints one JSON line: decisions/s, p50/p99 in ms, CPU per decision (client,
Redis) in microseconds, allowed, processes, threads.
"""

import argparse
import json
import multiprocessing as mp
import os
import random
import threading
import time

SUBJECTS = 10_000


def worker(url, prefix, strategy, threads, seconds, start_at, out):
    from limits import RateLimitItemPerSecond
    from limits.storage import RedisStorage
    from limits.strategies import STRATEGIES

    storage = RedisStorage(url, key_prefix=prefix, max_connections=threads + 2)
    limiter = STRATEGIES[strategy](storage)
    item = RateLimitItemPerSecond(100)
    limiter.hit(item, "warmup")
    results = []
    lock = threading.Lock()

    def run(seed):
        rng = random.Random(seed)
        latencies, allowed = [], 0
        while time.time() < start_at:
            time.sleep(0.001)
        while True:
            t = time.perf_counter()
            if t >= until_perf[0]:
                break
            allowed += limiter.hit(item, str(rng.randrange(SUBJECTS)))
            latencies.append(time.perf_counter() - t)
        with lock:
            results.append((latencies, allowed))

    # perf_counter deadline derived from the shared wall-clock start.
    until_perf = [time.perf_counter() + (start_at - time.time()) + seconds]
    pool = [threading.Thread(target=run, args=(os.getpid() * 1000 + i,)) for i in range(threads)]
    for t in pool:
        t.start()
    # The window starts when the threads do; time.process_time() counts
    # every thread of this process.
    time.sleep(max(0.0, start_at - time.time()))
    cpu_started = time.process_time()
    for t in pool:
        t.join()
    cpu = time.process_time() - cpu_started
    latencies = [l for ls, _ in results for l in ls]
    out.put((latencies, sum(a for _, a in results), cpu))


def main():
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=cores)
    parser.add_argument("--threads", type=int, default=max(1, 32 // cores))
    parser.add_argument("--strategy", default="fixed-window")
    args = parser.parse_args()
    prefix = f"limits-bench-{os.getpid()}"

    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.5
    procs = [
        ctx.Process(
            target=worker,
            args=(args.url, prefix, args.strategy, args.threads, args.seconds, start_at, out),
        )
        for _ in range(args.processes)
    ]
    import redis

    r = redis.Redis.from_url(args.url)

    def redis_cpu():
        info = r.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    for p in procs:
        p.start()
    time.sleep(max(0.0, start_at - time.time()))
    redis_cpu_started = redis_cpu()
    latencies, allowed, client_cpu = [], 0, 0.0
    for _ in procs:
        ls, a, cpu = out.get()
        latencies.extend(ls)
        allowed += a
        client_cpu += cpu
    redis_cpu_used = redis_cpu() - redis_cpu_started
    for p in procs:
        p.join()
    deleted = 0
    for key in r.scan_iter(match=f"{prefix}*", count=1000):
        deleted += r.unlink(key)

    latencies.sort()

    def pct(p):
        if not latencies:
            return 0.0
        rank = max(1, min(len(latencies), int(-(-p / 100 * len(latencies) // 1))))
        return latencies[rank - 1] * 1000

    print(
        json.dumps(
            {
                "decisions_per_s": len(latencies) / args.seconds,
                "decisions": len(latencies),
                "p50_ms": pct(50),
                "p99_ms": pct(99),
                "client_cpu_us_per_decision": client_cpu * 1e6 / max(1, len(latencies)),
                "redis_cpu_us_per_decision": redis_cpu_used * 1e6 / max(1, len(latencies)),
                "allowed": allowed,
                "processes": args.processes,
                "threads": args.threads,
                "strategy": args.strategy,
                "deleted_keys": deleted,
            }
        )
    )


if __name__ == "__main__":
    main()
