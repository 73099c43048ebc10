#!/bin/sh
# RUSTC_WRAPPER for the fuzz build (set by fuzz/run.sh): adds the coverage instrumentation that
# cargo-fuzz puts in RUSTFLAGS, but only to OUR crates (the ones whose sources live in this
# repository), so every dependency compiles exactly as in the root workspace's build and is
# shared with it. `cargo` calls this as: rustc-sancov.sh RUSTC ARGS...
rustc="$1"
shift
ours=0
for arg in "$@"; do
  case "$arg" in
    */.cargo/registry/*|*/registry/src/*|*/git/checkouts/*) ours=0; break ;;
    *.rs) ours=1 ;;
  esac
done
# Only crates compiled for the target, never build scripts (they run at build time).
case " $* " in
  *" --crate-name build_script_"*) ours=0 ;;
esac
if [ "$ours" = 1 ]; then
  exec "$rustc" "$@" \
    -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing
fi
exec "$rustc" "$@"
