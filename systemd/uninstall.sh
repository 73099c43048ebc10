#!/usr/bin/env bash
# Removes what systemd/install.sh installed (from its manifest), after stopping the units.
# Keeps /etc/cablebridge/config.toml if it was changed after installation, and the state
# directory /var/lib/cablebridge (linked phones) unless PURGE=1.
#   sudo systemd/uninstall.sh [PURGE=1]     DESTDIR as for install.sh
set -euo pipefail
DESTDIR="${DESTDIR:-}"
MANIFEST="$DESTDIR/var/lib/cablebridge-install.manifest"
[ -f "$MANIFEST" ] || { echo "uninstall.sh: no manifest at $MANIFEST (was install.sh run?)" >&2; exit 1; }

if [ -z "$DESTDIR" ]; then
  systemctl disable --now cablebridged.socket cablebridged.service 2>/dev/null || true
fi
example="$DESTDIR/etc/cablebridge/config.toml.example"
config="$DESTDIR/etc/cablebridge/config.toml"
keep_config=0
if [ -f "$config" ] && [ -f "$example" ] && ! cmp -s "$config" "$example"; then keep_config=1; fi
removed=0
while IFS= read -r path; do
  [ -n "$path" ] || continue
  if [ "$path" = /etc/cablebridge/config.toml ] && [ "$keep_config" = 1 ]; then
    echo "keeping $path (changed since installation)"
    continue
  fi
  rm -f "$DESTDIR$path" && removed=$((removed + 1))
done < "$MANIFEST"
rm -f "$MANIFEST"
rmdir "$DESTDIR/etc/cablebridge" 2>/dev/null || true
if [ "${PURGE:-0}" = 1 ]; then
  rm -rf "$DESTDIR/var/lib/cablebridge"
fi
if [ -z "$DESTDIR" ]; then
  systemctl daemon-reload 2>/dev/null || true
  udevadm control --reload 2>/dev/null || true
fi
echo "removed $removed files"
