#!/usr/bin/env bash
# Installs cablebridge as a system service: binaries, systemd units, sysusers/tmpfiles entries,
# the udev rule, the D-Bus policy for BlueZ, the example configuration, shell completions and
# man pages (generated from the CLI's clap definitions). Run as root from the repository:
#
#   cargo build --release --locked -p cablebridge -p cablebridge-service
#   sudo systemd/install.sh                  # PREFIX=/usr/local by default
#   sudo systemctl enable --now cablebridged.socket
#   cablebridge status
#
# Environment: PREFIX (default /usr/local), DESTDIR (staging root, default empty),
# BIN_DIR (default target/release), NO_RELOAD=1 to skip daemon-reload/udev/sysusers (packaging).
# systemd/uninstall.sh removes exactly what this installs (it reads the manifest written here).
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
BIN_DIR="${BIN_DIR:-target/release}"
MANIFEST="$DESTDIR/var/lib/cablebridge-install.manifest"

for b in cablebridge cablebridged; do
  [ -x "$BIN_DIR/$b" ] || { echo "install.sh: $BIN_DIR/$b missing; run: cargo build --release -p cablebridge -p cablebridge-service" >&2; exit 1; }
done

installed=()
put() { # mode src dest
  install -D -m "$1" "$2" "$DESTDIR$3"
  installed+=("$3")
}

put 0755 "$BIN_DIR/cablebridge" "$PREFIX/bin/cablebridge"
put 0755 "$BIN_DIR/cablebridged" "$PREFIX/bin/cablebridged"

unit_tmp="$(mktemp -d)"
trap 'rm -rf "$unit_tmp"' EXIT
sed "s#/usr/local#$PREFIX#g" systemd/cablebridged.service > "$unit_tmp/cablebridged.service"
put 0644 "$unit_tmp/cablebridged.service" /etc/systemd/system/cablebridged.service
put 0644 systemd/cablebridged.socket /etc/systemd/system/cablebridged.socket
put 0644 systemd/cablebridge.sysusers.conf /etc/sysusers.d/cablebridge.conf
put 0644 systemd/cablebridge.tmpfiles.conf /etc/tmpfiles.d/cablebridge.conf
put 0644 systemd/70-cablebridge.rules /etc/udev/rules.d/70-cablebridge.rules
put 0644 systemd/cablebridged-bluez.conf /etc/dbus-1/system.d/cablebridged-bluez.conf
# The uhid front (a phone as a local security key) only when asked: the unit drop-in grants
# /dev/uhid, the udev rule lets the service user open it.
if [ "${UHID:-0}" = 1 ]; then
  put 0644 systemd/cablebridged.service.d/uhid.conf /etc/systemd/system/cablebridged.service.d/uhid.conf
  put 0644 systemd/71-cablebridge-uhid.rules /etc/udev/rules.d/71-cablebridge-uhid.rules
fi
# The example always; the real file only when there is none (never overwrite an admin's file).
put 0644 systemd/config.toml.example /etc/cablebridge/config.toml.example
if [ ! -e "$DESTDIR/etc/cablebridge/config.toml" ]; then
  put 0644 systemd/config.toml.example /etc/cablebridge/config.toml
fi

# Completions and man pages from the clap definitions.
gen="$unit_tmp/gen"
mkdir -p "$gen/man"
"$BIN_DIR/cablebridge" completions bash > "$gen/cablebridge.bash"
"$BIN_DIR/cablebridge" completions zsh > "$gen/_cablebridge"
"$BIN_DIR/cablebridge" completions fish > "$gen/cablebridge.fish"
put 0644 "$gen/cablebridge.bash" "$PREFIX/share/bash-completion/completions/cablebridge"
put 0644 "$gen/_cablebridge" "$PREFIX/share/zsh/site-functions/_cablebridge"
put 0644 "$gen/cablebridge.fish" "$PREFIX/share/fish/vendor_completions.d/cablebridge.fish"
"$BIN_DIR/cablebridge" man "$gen/man" >/dev/null
for page in "$gen"/man/*.1; do
  put 0644 "$page" "$PREFIX/share/man/man1/$(basename "$page")"
done

mkdir -p "$(dirname "$MANIFEST")"
printf '%s\n' "${installed[@]}" > "$MANIFEST"

if [ -z "$DESTDIR" ] && [ "${NO_RELOAD:-0}" != 1 ]; then
  systemd-sysusers /etc/sysusers.d/cablebridge.conf || true
  systemd-tmpfiles --create /etc/tmpfiles.d/cablebridge.conf || true
  udevadm control --reload 2>/dev/null && udevadm trigger --subsystem-match=hidraw 2>/dev/null || true
  systemctl daemon-reload 2>/dev/null || true
fi
echo "installed ${#installed[@]} files (manifest: $MANIFEST)"
echo "next: systemctl enable --now cablebridged.socket && cablebridge status"
