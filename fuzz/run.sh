#!/usr/bin/env bash
# Builds and runs libFuzzer targets without cargo-fuzz (stable toolchain; see fuzz/README.md).
#
#   fuzz/run.sh build                      # build every target
#   fuzz/run.sh list                       # the target names
#   fuzz/run.sh TARGET SECONDS [ARGS...]   # fuzz one target for SECONDS (0 = until stopped)
#   fuzz/run.sh all SECONDS                # every target in turn, SECONDS each (the CI step)
#   fuzz/run.sh repro TARGET FILE...       # run the target once on saved inputs (crash triage)
#   fuzz/run.sh slowest TARGET             # replay seeds + working corpus, print the slowest input
#
# Each run starts from the checked-in seeds (fuzz/corpus/TARGET, read-only) plus a working corpus
# outside the tree (${CB_FUZZ_WORK:-target/fuzz-work}/TARGET) that keeps what the fuzzer learned
# between runs. Crashes, timeouts and OOMs are written to ${CB_FUZZ_WORK}/artifacts/TARGET/ and
# make the run fail. ARGS are passed to libFuzzer (e.g. -jobs=2 -workers=2, -max_len=4096).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
# The coverage instrumentation cargo-fuzz puts in RUSTFLAGS, applied by a rustc wrapper to our
# crates only (stable toolchain, no cargo-fuzz, no RUSTC_BOOTSTRAP; see fuzz/README.md).
export RUSTC_WRAPPER="$here/rustc-sancov.sh"
# Same target dir as the root workspace: the dependencies are built with identical settings, so
# a build after `cargo test` only compiles our instrumented crates and libFuzzer.
target_dir="${CARGO_TARGET_DIR:-$root/target}"
work="${CB_FUZZ_WORK:-$target_dir/fuzz-work}"

targets() {
  sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' "$here/Cargo.toml" | grep -v '^cablebridge-fuzz$'
}

build() {
  cargo build --manifest-path "$here/Cargo.toml" --locked --target-dir "$target_dir" --bins "$@"
}

run_one() {
  local t="$1" secs="$2"
  shift 2
  local bin="$target_dir/debug/$t"
  [ -x "$bin" ] || build --quiet
  mkdir -p "$work/$t" "$work/artifacts/$t"
  local args=(-timeout=1 -rss_limit_mb=2048 -print_final_stats=1 "-artifact_prefix=$work/artifacts/$t/")
  [ "$secs" != 0 ] && args+=("-max_total_time=$secs")
  echo "== fuzz $t (${secs}s)"
  # Corpus dirs: the first is written to (working corpus), the seeds are only read.
  "$bin" "${args[@]}" "$@" "$work/$t" "$here/corpus/$t"
}

case "${1:-}" in
  build) shift; build "$@" ;;
  list) targets ;;
  all)
    secs="${2:?seconds per target}"
    shift 2
    build --quiet
    failed=()
    for t in $(targets); do
      log="$work/$t.log"
      mkdir -p "$work"
      rc=0
      run_one "$t" "$secs" "$@" >"$log" 2>&1 || rc=$?
      # The summary: executions, coverage, peak memory, the slowest unit; the log on failure.
      grep -E '^(== fuzz|#[0-9]+[[:space:]]+DONE)|stat::' "$log" || true
      if [ "$rc" != 0 ]; then
        tail -n 40 "$log" >&2
        failed+=("$t")
      fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzz targets FAILED: ${failed[*]} (inputs in $work/artifacts/)" >&2
      exit 1
    fi
    ;;
  repro)
    t="${2:?target}"
    shift 2
    [ -x "$target_dir/debug/$t" ] || build --quiet
    "$target_dir/debug/$t" -runs=1 "$@"
    ;;
  slowest)
    t="${2:?target}"
    [ -x "$target_dir/debug/$t" ] || build --quiet
    find "$work/$t" "$here/corpus/$t" -type f 2>/dev/null \
      | xargs -r "$target_dir/debug/$t" -runs=1 2>&1 \
      | sed -nE 's/^Executed (.*) in ([0-9]+) ms$/\2 ms \1/p' | sort -n | tail -n 1
    ;;
  ""|-h|--help) sed -n '2,14p' "$0" ;;
  *)
    t="$1"
    secs="${2:?seconds (0 = until stopped)}"
    shift 2
    targets | grep -qx "$t" || { echo "unknown target $t (fuzz/run.sh list)" >&2; exit 2; }
    run_one "$t" "$secs" "$@"
    ;;
esac
