//! Worker processes: the test binary run again, for tests about a fleet.

/// Runs this test binary again as worker processes, one per `specs` entry:
/// each runs the single test `test`, with its spec in the environment
/// variable `env`, and prints `<marker> <count>`. Waits for all of them and
/// returns the sum of their counts; a worker that fails fails the test.
pub fn run_test_workers(test: &str, env: &str, specs: &[String], marker: &str) -> u64 {
    let exe = std::env::current_exe().expect("the test binary's path");
    let children: Vec<_> = specs
        .iter()
        .map(|spec| {
            std::process::Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads", "1"])
                .env(env, spec)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a worker process")
        })
        .collect();
    let mut total = 0;
    for child in children {
        let output = child.wait_with_output().expect("a worker's output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "worker failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // libtest prints "test <name> ... " on the same line, before the count.
        let count: String = stdout
            .split_once(&format!("{marker} "))
            .unwrap_or_else(|| panic!("no {marker} count from worker: {stdout}"))
            .1
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        total += count.parse::<u64>().expect("a count");
    }
    total
}
