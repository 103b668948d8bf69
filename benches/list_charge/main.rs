//! A caller who lists as fast as it can, against a table of limited read
//! capacity, while another caller does GETs: the users API with its
//! read-unit charge on, and the same service with the charge off, in one run
//! (issue 15).
//!
//! # Method
//!
//! Everything but DynamoDB Local and Redis runs in this process: the fault
//! proxy in front of DynamoDB Local, and the users API (`users_api::build`,
//! `app`, `run`) on 127.0.0.1:0 with its DynamoDB calls through the proxy.
//! The proxy's capacity model gives the bench's users table `BENCH_CAPACITY`
//! RCU/s (default 100) with DynamoDB's 300-second burst bank, empty at start
//! (a fresh proxy per variant, so neither inherits the other's bank), and
//! prices each Scan page by the items it read, as DynamoDB does.
//!
//! The table holds `BENCH_USERS` users (default 2,000) written straight into
//! it, each with a `bio` attribute that makes it about `BENCH_ITEM_BYTES`
//! (default 1,500) bytes: the API's `User` ignores attributes it does not
//! know, so a list reads and pays for the whole item and shows only the
//! user's fields. A list page of 100 such users reads more than the 16 read
//! units a page reserves, so pages stop at their read budget.
//!
//! Two API keys call the service for `BENCH_SECONDS` (default 30) per variant:
//!
//! - the **lister**: `BENCH_LISTERS` tasks (default 4) each walking
//!   `GET /api/v1/users?limit=100` along `next_cursor` to the end and starting
//!   again, asking again at once when refused (it honours nothing). Its
//!   request quota (`BENCH_LISTER_REQUESTS`, default 200/s) is generous, so
//!   the request count is not what stops it;
//! - the **getter**: `GET /api/v1/users/{id}` of seeded users at
//!   `BENCH_GET_RATE` per second (default 10), open loop.
//!
//! Variants: **charge on**, a read-unit quota per key of R =
//! `BENCH_READ_UNITS` (default 20) per second and a burst of
//! `BENCH_READ_BURST` (default 32; a page reserves 16); **charge off**, the
//! same service with a quota of 1,000,000 units per second that never binds.
//! The fleet capacity gate is off on both tables in both variants, and the
//! per-address ceiling is raised (both callers are on 127.0.0.1), so the
//! charge is the only difference.
//!
//! Reported per variant, from the proxy's counters over the window: the read
//! units the lister's Scans consumed per second against R + burst / window
//! (goal: at most that), the table's read units per second against its
//! capacity, throttles; the getter's success rate (goal: at least 99 %) and
//! its other answers; the lister's pages and refusals; this process's CPU
//! time per request (`/proc/self/stat`; it includes the proxy and the load
//! generator, which share the process).
//!
//! # Running
//!
//! `./dev.sh bench` starts the stack and runs this with the other benchmarks.
//! With the stack up: `cargo bench --bench list_charge` (`AWS_ENDPOINT_URL`,
//! `REDIS_URL`). Besides printing its table, it writes it to
//! `benches/results/list_charge.md`.

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod load;
mod report;
mod run;
mod stack;

use bench::{Bench, Variant};
use common::results::{Results, redis_version, say};
use common::{endpoint, local_config};
use stack::Names;

#[tokio::main]
async fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bench = Bench::from_env();
    let mut results = Results::start("list_charge");
    if let Some(version) = server_version(&bench.redis_url).await {
        results.version("Redis", version);
    }
    let direct = local_config(&endpoint());
    let admin = aws_sdk_dynamodb::Client::new(&direct);
    let names = Names::unique();
    stack::create_tables(&admin, &names).await;
    stack::seed_users(&admin, &names.users, bench.users, bench.item_bytes).await;

    say!(
        results,
        "list_charge: {} users of about {} bytes; users table at {} RCU/s (fault proxy capacity \
         model, 300 s burst bank empty at start, a fresh proxy per variant); {} s per variant",
        bench.users,
        bench.item_bytes,
        bench.capacity,
        bench.seconds
    );
    say!(
        results,
        "lister: {} tasks paging `GET /api/v1/users?limit=100` to the end and again, refusals \
         retried at once, request quota {}/s; getter: `GET /api/v1/users/{{id}}` at {}/s; \
         a page reserves {} read units",
        bench.listers,
        bench.lister_requests,
        bench.get_rate,
        users_api::LIST_READ_UNITS
    );
    say!(
        results,
        "both variants: the same service, capacity gate off on both tables, per-address \
         ceiling raised; only the per-key read-unit quota differs (charge off: {}/s, never binds)",
        bench::UNBOUNDED_UNITS
    );
    say!(results);

    let mut outcomes = Vec::new();
    for variant in [Variant::ChargeOn, Variant::ChargeOff] {
        eprintln!(
            "list_charge: running {} for {} s",
            variant.name(),
            bench.seconds
        );
        outcomes.push(run::run(&bench, &names, &direct, variant).await);
    }
    report::print(&mut results, &bench, &outcomes);
    say!(results);
    say!(
        results,
        "Read units are the proxy's (DynamoDB's pricing: a page costs its items read, rounded \
         up to 4 KB, half for eventually consistent reads). CPU is this process's: the service, \
         the fault proxy and the load generator together; DynamoDB Local and Redis are not in it."
    );

    stack::delete_tables(&admin, &names).await;
    stack::delete_redis_keys(&bench.redis_url, &names.redis_prefix).await;
    results.save();
}

async fn server_version(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut connection = redis::aio::ConnectionManager::new(client).await.ok()?;
    redis_version(&mut connection).await
}
