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
if [ ${#need_pkgs[@]} -gt 0 ]; then
  step "installing system packages: ${need_pkgs[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    echo "missing packages (${need_pkgs[*]}); run as root or install them" >&2
    exit 1
  fi
fi

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

step "tests"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

# --- hw-tests sim tier (mock BlueZ on a private dbus-daemon; not a default member) -------------
# Runs the real btleplug scanner and the zbus advertiser against hw-tests/src/mock_bluez. Needs
# only dbus-daemon (installed above); libdbus is built from source (dbus "vendored"). < 60 s.
step "hw-tests sim tier (mock BlueZ)"
cargo test -p cablebridge-hw-tests --locked
# ------------------------------------------------------------------------------------------------

if [ "${CB_SOAK:-0}" = 1 ]; then
  step "long mode (CB_SOAK=1)"
  PROPTEST_CASES=10000 cargo test --workspace --release --locked -- --include-ignored soak
fi
