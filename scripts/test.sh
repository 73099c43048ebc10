#!/usr/bin/env bash
# The README's test command: everything CI checks, runnable on a fresh machine of this kind.
#   bash scripts/test.sh           # full run (what CI runs)
#   CB_SOAK=1 bash scripts/test.sh # also the long fuzz/soak modes (manual; unbounded by CI limits)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# System packages the test tiers need (the mock-BlueZ tier runs a private dbus-daemon).
# Installed only when missing, so a developer machine is not touched twice.
need_pkgs=()
command -v dbus-daemon >/dev/null 2>&1 || need_pkgs+=(dbus-daemon)
# `script` drives the interactive picker through a pseudo-terminal (tools/tests/picker_tty.rs).
command -v script >/dev/null 2>&1 || need_pkgs+=(bsdutils)
# `ip` and `tc` build the network-namespace fault tests (tools/tests/netns_faults.rs; root only).
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || need_pkgs+=(iproute2)
# hidapi (under ctap-hid-fido2, the real-key cross-check in hw-tests; compiled by every run with
# --all-targets) builds its hidraw backend against libudev, found through pkg-config.
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
pkg-config --exists libudev 2>/dev/null || need_pkgs+=(libudev-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  step "installing system packages: ${need_pkgs[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    echo "missing packages (${need_pkgs[*]}); run as root or install them" >&2
    exit 1
  fi
fi

# --- python-fido2 interop (owner: vkey) ------------------------------------------------------
# daemon/tests/vkey_python_interop.rs runs tests/interop/python_fido2_udp.py against the virtual
# key; it FAILS (never skips) when python-fido2 is missing, so install the pinned version here.
# Idempotent: pip runs only when the pinned version is not already importable.
# Developers without Python can set CB_SKIP_PYTHON_INTEROP=1.
CB_FIDO2_VERSION=2.2.1
if [ "${CB_SKIP_PYTHON_INTEROP:-0}" != 1 ]; then
  PY="${PYTHON:-python3}"
  if ! command -v "$PY" >/dev/null 2>&1; then
    echo "python3 is required for the python-fido2 cross-check (or set CB_SKIP_PYTHON_INTEROP=1)" >&2
    exit 1
  fi
  has_fido2() {
    "$1" -c "import importlib.metadata as m, sys; sys.exit(m.version('fido2') != '$CB_FIDO2_VERSION')" 2>/dev/null
  }
  # A Debian system Python refuses pip installs (PEP 668, "externally-managed-environment"):
  # then python-fido2 goes into a virtual environment under target/, and the tests use it.
  VENV="$PWD/target/python-venv"
  if ! has_fido2 "$PY" && [ -x "$VENV/bin/python" ] && has_fido2 "$VENV/bin/python"; then
    PY="$VENV/bin/python"
  fi
  if ! has_fido2 "$PY"; then
    step "installing python-fido2 $CB_FIDO2_VERSION (interop cross-check)"
    if ! "$PY" -m pip install --quiet --disable-pip-version-check "fido2==$CB_FIDO2_VERSION" 2>/dev/null; then
      echo "$PY does not take pip installs here; using a virtual environment in $VENV"
      if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
          apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        fi
        "$PY" -m venv "$VENV"
      fi
      PY="$VENV/bin/python"
      "$PY" -m pip install --quiet --disable-pip-version-check "fido2==$CB_FIDO2_VERSION"
    fi
  fi
  export PYTHON="$PY"
fi
# --- end python-fido2 interop -----------------------------------------------------------------

step "rustfmt"
cargo fmt --all -- --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "protocol/ is sans-IO: its dependency tree has no tokio, mio or socket crates"
if cargo tree -p cablebridge-protocol -e normal,build --prefix none --locked \
    | grep -E '^(tokio|mio|socket2|tokio-tungstenite|btleplug) ' ; then
  echo "protocol/ must not depend on an IO runtime" >&2
  exit 1
fi
cargo build -p cablebridge-protocol --locked --quiet

# --- secrets stay in their types outside protocol/ (owner: links; ARCHITECTURE.md invariant 7) --
step "no .expose() on QR secrets, link secrets or PSKs in daemon/ and tools/"
# Allowed only on a line marked `secret-export: <why>` (or the line after the marker): the link
# store file and explicit show-secret lab output.
exposed=$(find daemon tools -name '*.rs' -print0 | xargs -0 awk '
  FNR == 1 { prev = "" }
  /(^|[^_a-z])secret\.expose\(\)|qr\.secret\.expose\(\)|link_secret\.expose\(\)|psk[a-z_]*(\([^)]*\))?\.expose\(\)/ {
    if ($0 !~ /secret-export:/ && prev !~ /secret-export:/) print FILENAME ":" FNR ": " $0
  }
  { prev = $0 }')
if [ -n "$exposed" ]; then
  printf '%s\n' "$exposed" >&2
  echo "QR secrets, link secrets and PSKs stay inside protocol/ types (see ARCHITECTURE.md)" >&2
  exit 1
fi
# --- end secret check ---------------------------------------------------------------------------

step "tests (includes the hw-tests sim tier: mock BlueZ on a private dbus-daemon)"
# --workspace includes hw-tests (not a default member): the real btleplug scanner and the zbus
# advertiser run against hw-tests/src/mock_bluez; libdbus is built from source (dbus "vendored").
# CB_SOAK is unset here so the CI-sized property-test counts apply (see the long mode below).
env -u CB_SOAK cargo test --workspace --all-targets --locked
env -u CB_SOAK cargo test --workspace --doc --locked

step "benches still run (cablebridge bench all --quick; numbers printed, never asserted)"
# The debug binary the tests just built: a --release build of the whole tree costs far more than
# the ~3 minutes of compile this step may add to CI. Debug numbers are meaningless for crypto
# (generic AES-GCM code is monomorphised unoptimised into our crates); this step only keeps the
# benches from rotting. Real numbers: docs/performance.md (`cargo run --release ...`).
timeout 300 cargo run -p cablebridge --locked --quiet -- bench all --quick

# --- optional aws-lc-rs P-256 backend (owner: awslc; issue 13, docs/performance.md) -------------
step "aws-lc feature: protocol tests and clippy with it, and its release handshake bench"
# The feature swaps the Noise handshake's P-256 work to aws-lc-rs (protocol/src/hybrid/ecdh.rs);
# the vectors must pass byte for byte with it. The bench is protocol's own (release, ~0.3 s of
# running): building only protocol in release keeps this step to a few minutes, where a release
# `cablebridge` would cost ~14 on this machine class. `bench handshake` with the ratio to the
# primitives: `cargo run --release -p cablebridge --features aws-lc -- bench handshake`.
cargo test -p cablebridge-protocol --features aws-lc --locked
cargo clippy -p cablebridge-protocol --features aws-lc --all-targets --locked -- -D warnings
timeout 600 cargo bench -p cablebridge-protocol --features aws-lc --bench handshake --locked
# --- end aws-lc backend ---------------------------------------------------------------------------

# --- fuzzing and dependency policy (owner: fuzz; issue 14, fuzz/README.md, deny.toml) ----------
step "fuzz: every libFuzzer target for a bounded time (fuzz/run.sh all)"
# Built with the stable toolchain and plain cargo (no cargo-fuzz, no nightly: fuzz/run.sh adds the
# coverage flags to our crates through a rustc wrapper) into the same target dir as the tests
# above, so only our instrumented crates, the harnesses and libFuzzer compile here. libFuzzer's
# C++ sources need a C++ compiler (installed when missing and run as root, like the packages above).
if ! command -v c++ >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++
  else
    echo "fuzzing needs a C++ compiler (apt-get install g++)" >&2
    exit 1
  fi
fi
# CI: 8 s per target (16 targets; about 7 minutes with the build and the lint here); CB_SOAK=1:
# 10 minutes each (docs/reliability.md); CB_FUZZ_SECONDS overrides both.
if [ "${CB_SOAK:-0}" = 1 ]; then fuzz_secs="${CB_FUZZ_SECONDS:-600}"; else fuzz_secs="${CB_FUZZ_SECONDS:-8}"; fi
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --locked --bins --quiet -- -D warnings
timeout $((16 * fuzz_secs + 900)) bash fuzz/run.sh all "$fuzz_secs"

step "cargo deny: licenses, bans, sources (advisories: see deny.toml, needs network)"
# Installed when missing (about 5 minutes of compile on this machine class; bounded). The
# advisory database cannot be fetched here; deny.toml says how to run that check elsewhere.
CB_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CB_DENY_VERSION"; then
  step "installing cargo-deny $CB_DENY_VERSION"
  if ! timeout 1200 cargo install cargo-deny --version "$CB_DENY_VERSION" --locked --quiet; then
    # Skipped ONLY when crates.io cannot be reached; any other install failure fails the run.
    if timeout 60 cargo info "cargo-deny@$CB_DENY_VERSION" >/dev/null 2>&1; then
      echo "cargo-deny $CB_DENY_VERSION failed to install although crates.io is reachable" >&2
      exit 1
    fi
    echo "!!! crates.io unreachable: cargo-deny not installed, license/ban/source checks SKIPPED !!!" >&2
    cb_deny_skipped=1
  fi
fi
if [ "${cb_deny_skipped:-0}" != 1 ]; then
  cargo deny --locked check bans licenses sources
fi
# --- end fuzzing and dependency policy -----------------------------------------------------------

if [ "${CB_SOAK:-0}" = 1 ]; then
  # Manual long mode: every proptest runs 100x its CI case count (protocol::proptest_cases!,
  # read at compile time), and the tunnel load test opens 20,000 tunnels (bounded by the
  # open-file limit). Takes tens of minutes; not run by CI.
  step "long mode (CB_SOAK=1): 100x property-test cases, large tunnel load"
  CB_SOAK=1 CB_TUNNEL_LOAD=20000 cargo test --workspace --release --locked
fi
