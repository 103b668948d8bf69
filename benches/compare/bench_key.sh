# shellcheck shell=bash
# The users API set up for a bench whose every request is decided by the
# rate-limit layer and admitted: quotas no load reaches, and a key with such
# quotas. For the benchmark scripts (sourced, not run), after stack/lib.sh:
#
#   . "$REPO_ROOT/benches/compare/bench_key.sh"

# unlimited_limits PREFIX: exports the service's settings (its log level,
# the limiter's key prefix, the per-address ceiling and the key's read and
# write units) so that no request is refused: a refusal would be timed in
# place of the API.
unlimited_limits() {
  export RUST_LOG=warn LIMITER_PREFIX="$1" IP_PER_SECOND=1000000 IP_BURST=1000000 \
    KEY_READ_UNITS_PER_SECOND=1000000 KEY_READ_UNITS_BURST=1000000 \
    KEY_WRITE_UNITS_PER_SECOND=1000000 KEY_WRITE_UNITS_BURST=1000000
}

# issue_bench_key API OWNER DIR: issues a key of OWNER with quotas no load
# reaches; sets KEY (the key) and key_id (to revoke it at the end). The
# command's message goes to DIR/issue-key.err.
issue_bench_key() {
  KEY="$("$1" issue-key --owner "$2" --per-second 1000000 --burst 1000000 --per-day 1000000000 \
    2>"$3/issue-key.err")" || die "issue-key failed: $(cat "$3/issue-key.err")"
  key_id="$(sed -nE 's/.*\(id ([^,)]+).*/\1/p' "$3/issue-key.err")"
}
