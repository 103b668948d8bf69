//! Goodput of a fleet writing to one table at twice its provisioned capacity:
//! the plain AWS SDK, dynagate's retries alone, and dynagate with the fleet
//! capacity gate, in one run.
//!
//! # Method
//!
//! The fleet is `BENCH_PROCESSES` (default 8) OS processes, as the instances
//! of a service would be: this program run again as workers, each with its
//! own client. They write to one table of DynamoDB Local through the fault
//! proxy (run by this parent process), whose capacity model gives the table
//! `BENCH_CAPACITY` WCU/s (default 100) with a one-second burst bank, full at
//! start.
//!
//! The load is open-loop: together the workers offer twice the capacity for
//! `BENCH_SECONDS` (default 20), each its share on a fixed schedule from a
//! common start instant, interleaved with the others' writes. A write starts
//! on schedule whatever happened to the earlier ones, as requests arrive at a
//! service. Each is a ~400-byte PutItem (1 WCU) of its own key. Latency is
//! counted from the scheduled start, so time spent waiting for a turn counts.
//!
//! *Goodput* is the share of the provisioned capacity that became successful
//! writes: successes / (capacity × seconds from the common start to the last
//! completion). With twice the capacity offered, 100 % is the ceiling (a few
//! percent more from the bank that is full at start). What a client does with
//! the half of the load that cannot fit decides how far below the ceiling it
//! lands and at what cost: attempts per success and throttled requests (both
//! as the proxy counted them), give-ups by reason, latency. Latency is given
//! twice: of the successful writes, and as time to outcome over all writes
//! (a give-up that answers at once is a fast outcome for its caller; one
//! that comes after a long wait is not).
//!
//! # Variants
//!
//! Each runs against a fresh table, one after another:
//!
//! 1. the AWS SDK in standard retry mode with dynagate's budget: the maximum
//!    attempts of dynagate's default retry policy, and its per-operation
//!    deadline as the SDK's operation timeout (both read from the policy).
//!    The fair fight: the headline compares dynagate with it first;
//! 2. the AWS SDK in standard retry mode with its defaults (3 attempts);
//! 3. the AWS SDK under its opt-in Retry Behavior 2.1
//!    (`AWS_NEW_RETRIES_2026=true`). No `BehaviorVersion` of the SDK in
//!    Cargo.lock selects it: `common::sdk_baseline` says which versions and
//!    files were checked;
//! 4. the AWS SDK in adaptive retry mode (a client-side rate limiter in each
//!    process);
//! 5. dynagate's `ResilientClient` with its default retry policy, no gate;
//! 6. the same with the fleet capacity gate: each process builds its own
//!    `CapacityGate` on the same Redis prefix and table capacity, so the
//!    processes share nothing but Redis.
//!
//! The result file lists what each SDK configuration resolved to (mode,
//! attempts, backoffs, operation timeout), read back from the built client.
//!
//! CPU time is given per successful write: of the worker processes (each
//! reads its own `/proc/self/stat` from the start to its last write; they are
//! summed) and of DynamoDB Local (the process listening on the endpoint's
//! port, read by the parent around the run; `-` if there is none on this
//! machine). DynamoDB Local serves every client on the machine, so its figure
//! includes whatever else ran against it meanwhile. The fault proxy runs in
//! the parent and counts for neither.
//!
//! A second scenario halves the table's capacity at half time while the gate
//! stays configured with the original capacity (variant 6, and variant 5 for
//! contrast). It prints a timeline per second: successful writes and throttled
//! requests (from the proxy's counters) and the gate's adaptive rate (read
//! from Redis). Its goodput is relative to the capacity in force, second by
//! second.
//!
//! # Running
//!
//! `./dev.sh bench` starts the stack and runs this with the other benchmarks.
//! With the stack up (`stack/stack.sh start dynamodb redis`):
//! `cargo bench --bench goodput`. Settings: `BENCH_CAPACITY` (WCU/s, default
//! 100), `BENCH_SECONDS` (default 20), `BENCH_PROCESSES` (default 8),
//! `AWS_ENDPOINT_URL` (DynamoDB Local), `REDIS_URL`. Besides printing its
//! tables, it writes them to `benches/results/goodput.md`.
//!
//! # Layout
//!
//! [`bench`] holds the settings and the variants, [`worker`] the worker
//! processes, [`fleet`] their parent's side, [`run`] one variant's run and
//! [`outcome`] what it came to, [`report`] the tables.

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod fleet;
mod outcome;
mod report;
mod run;
mod worker;

use bench::{Bench, Scenario, Variant, WORKER_ENV};
use common::local_config;
use common::results::{Results, redis_version, say};
use common::sdk_baseline::{RETRY_BEHAVIOR_NOTE, SdkBaseline, sdk_version};
use dynagate::retry::RetryPolicy;
use report::{print_ratios, print_timeline, print_totals};
use run::run;
use worker::worker_main;

async fn bench_main() {
    let bench = Bench::from_env();
    let policy = RetryPolicy::builder()
        .build()
        .expect("default retry policy");
    let mut results = Results::start("goodput");
    let (sdk, version) = sdk_version();
    results.version(sdk, version);
    if let Some(version) = server_version(&bench.redis_url).await {
        results.version("Redis", version);
    }
    say!(
        results,
        "goodput: {} processes offer {} PutItem/s in total (1 WCU each, open loop) for {} s \
         against {} WCU/s provisioned (fault proxy capacity model, 1 s burst bank full at start), \
         DynamoDB Local behind it",
        bench.processes,
        2 * bench.capacity,
        bench.seconds,
        bench.capacity
    );

    say!(results);
    for baseline in SdkBaseline::ALL {
        let config = baseline.config(&local_config(&bench.upstream));
        say!(results, "- {}", baseline.describe(&config));
    }
    say!(results, "- {RETRY_BEHAVIOR_NOTE}");
    say!(
        results,
        "- dynagate: default retry policy ({} attempts, deadline {:?}), each process its own client",
        policy.max_attempts(),
        policy.deadline()
    );
    say!(
        results,
        "- CPU per successful write: client = the worker processes, summed, from the start to their last \
         write; DynamoDB Local = {}",
        match bench.server_pid {
            Some(_) =>
                "the process listening on the endpoint's port (it serves every client on the machine)",
            None => "not found (no local process listens on the endpoint's port): `-`",
        }
    );

    let steady = run(&bench, Scenario::Steady, &Variant::ALL).await;
    say!(results);
    print_totals(&mut results, &steady);
    say!(results);
    // The headline: dynagate against the SDK with the same budget first,
    // then against the SDK's other configurations.
    let find = |variant| {
        steady
            .iter()
            .find(|o| o.variant == variant)
            .expect("every variant ran")
    };
    let same_budget = find(Variant::Sdk(SdkBaseline::SameBudget));
    print_ratios(&mut results, find(Variant::DynagateGate), same_budget);
    print_ratios(&mut results, find(Variant::Dynagate), same_budget);
    for baseline in &SdkBaseline::ALL[1..] {
        print_ratios(
            &mut results,
            find(Variant::DynagateGate),
            find(Variant::Sdk(*baseline)),
        );
    }

    let halved = run(
        &bench,
        Scenario::Halved,
        &[Variant::DynagateGate, Variant::Dynagate],
    )
    .await;
    say!(results);
    say!(
        results,
        "Capacity halved to {} WCU/s after second {}, the gate still configured with {} WCU/s; \
         goodput relative to the capacity in force:",
        bench.capacity / 2,
        bench.seconds / 2,
        bench.capacity
    );
    for outcome in &halved {
        print_timeline(&mut results, outcome);
    }
    say!(results);
    print_totals(&mut results, &halved);
    results.save();
}

/// The version of the Redis the gate runs against, for the result file.
async fn server_version(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut connection = redis::aio::ConnectionManager::new(client).await.ok()?;
    redis_version(&mut connection).await
}

fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    match std::env::var(WORKER_ENV) {
        Ok(spec) => worker_main(&spec),
        Err(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(bench_main()),
    }
}
