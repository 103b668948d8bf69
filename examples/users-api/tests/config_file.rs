//! A bad `RATE_LIMIT_CONFIG` stops the binary at start, before it connects
//! to anything, with the file, the line and the key named.

use std::process::Command;

#[test]
fn a_bad_rate_limit_config_is_refused_at_start_with_the_key_named() {
    let path =
        std::env::temp_dir().join(format!("users-api-bad-limits-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[policy]]\nname = \"writes\"\nroutes = [\"FETCH /api/v1/users\"]\n\
         limits = [{ name = \"minute\", rate = 5, per = \"minute\" }]\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_users-api"))
        .arg("serve")
        .env("RATE_LIMIT_CONFIG", &path)
        // Nothing answers here: the refusal must come before any connection.
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("RATE_LIMIT_CONFIG"), "{stderr}");
    assert!(stderr.contains("`policy[0].routes[0]`"), "{stderr}");
    assert!(stderr.contains("FETCH"), "{stderr}");
}
