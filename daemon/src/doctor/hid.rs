//! `hid.devices` and `hid.permissions`: which FIDO keys are attached, and can this user open them.
//!
//! Enumeration is [`crate::hid::sysfs::enumerate`] (report descriptors are world-readable, so keys
//! are found even when their nodes are not). Access is tested by opening each node read-write, as
//! a ceremony does, and a denial is explained from the node's owner group and mode: join the group
//! that already owns it, or install `systemd/70-cablebridge.rules` (FIDO hidraw nodes → group
//! `cablebridge`, mode 0660), whichever applies.

use super::os::{Account, Groups};
use super::{Check, DoctorOptions};
use crate::hid::sysfs::{self, SysRoots};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The group our udev rule gives FIDO hidraw nodes.
const RULE_GROUP: &str = "cablebridge";
const RULE_FILE: &str = "70-cablebridge.rules";

fn rule_installed() -> bool {
    ["/etc/udev/rules.d", "/usr/lib/udev/rules.d", "/lib/udev/rules.d"]
        .iter()
        .any(|d| Path::new(d).join(RULE_FILE).is_file())
}

/// What to do about a node this account may not open.
pub(crate) fn remedy(
    node: &str,
    node_gid: u32,
    mode: u32,
    account: &Account,
    groups: &Groups,
    rule_installed: bool,
) -> String {
    let user = &account.user;
    let group = groups.name(node_gid);
    if node_gid != 0 && mode & 0o060 == 0o060 && !account.in_group(node_gid) {
        return format!(
            "{node} belongs to group '{group}' (mode {mode:04o}): add {user} to it (usermod -aG \
             {group} {user}, then log in again; for the daemon: SupplementaryGroups={group})"
        );
    }
    if rule_installed {
        return format!(
            "{RULE_FILE} is installed but did not apply to {node}: re-plug the key or run udevadm \
             trigger --subsystem-match=hidraw; `udevadm info {node}` must show ID_FIDO_TOKEN=1"
        );
    }
    let sysusers = if groups.gid(RULE_GROUP).is_none() {
        format!(
            "create the '{RULE_GROUP}' group (systemd-sysusers systemd/cablebridge.sysusers.conf), "
        )
    } else {
        String::new()
    };
    format!(
        "install the udev rule (cp systemd/{RULE_FILE} /etc/udev/rules.d/ && udevadm control \
         --reload && udevadm trigger --subsystem-match=hidraw), {sysusers}then usermod -aG \
         {RULE_GROUP} {user} and log in again (users at the seat get access through uaccess)"
    )
}

/// Runs the HID section.
pub fn run(opts: &DoctorOptions) -> Vec<Check> {
    let roots = SysRoots { sys: opts.sys_root.clone(), dev: opts.dev_root.clone() };
    let found = sysfs::enumerate(&roots);
    let skipped: Vec<String> =
        found.skipped.iter().map(|s| format!("{} ({})", s.name, s.reason)).collect();
    let devices = if found.devices.is_empty() && skipped.is_empty() {
        Check::skip("hid.devices", "no FIDO security key attached (hidraw)")
    } else if skipped.is_empty() {
        let listed: Vec<String> = found.devices.iter().map(|d| d.describe()).collect();
        Check::pass("hid.devices", format!("{} key(s): {}", listed.len(), listed.join("; ")))
    } else {
        let listed: Vec<String> = found.devices.iter().map(|d| d.describe()).collect();
        Check::warn(
            "hid.devices",
            format!(
                "{} key(s): {}; could not examine: {}",
                listed.len(),
                listed.join("; "),
                skipped.join("; ")
            ),
            "re-plug the devices named; a malformed report descriptor means a faulty device or driver",
        )
    };
    if found.devices.is_empty() {
        return vec![devices, Check::skip("hid.permissions", "no FIDO key to open")];
    }
    let account = Account::current();
    let groups = Groups::load();
    let installed = rule_installed();
    let mut ok = Vec::new();
    let mut denied = Vec::new();
    let mut remedies = Vec::new();
    let mut other = Vec::new();
    for d in &found.devices {
        let node = d.path.display().to_string();
        match std::fs::OpenOptions::new().read(true).write(true).open(&d.path) {
            Ok(_) => ok.push(node),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let (gid, mode) = std::fs::metadata(&d.path)
                    .map(|m| (m.gid(), m.mode() & 0o7777))
                    .unwrap_or((0, 0));
                denied.push(format!("{node} (group {}, mode {mode:04o})", groups.name(gid)));
                remedies.push(remedy(&node, gid, mode, &account, &groups, installed));
            }
            Err(e) => other.push(format!("{node}: {e}")),
        }
    }
    remedies.dedup();
    let who = format!("uid {} ({})", account.uid, account.user);
    let permissions = if !denied.is_empty() {
        Check::fail(
            "hid.permissions",
            format!("{who} may not open {}", denied.join(", ")),
            remedies.join("; "),
        )
    } else if !other.is_empty() {
        Check::warn(
            "hid.permissions",
            format!("{who} could not open {}", other.join("; ")),
            "re-plug the key; if it persists, check dmesg for USB errors",
        )
    } else {
        Check::pass("hid.permissions", format!("{who} can open {}", ok.join(", ")))
    };
    vec![devices, permissions]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(gids: Vec<u32>) -> Account {
        Account { uid: 1000, user: "alice".into(), gids }
    }

    #[test]
    fn remedies_name_the_group_or_the_rule() {
        let groups = Groups::parse("root:x:0:\nplugdev:x:46:\ncablebridge:x:990:\n");
        // Node already group-owned: join that group.
        let r = remedy("/dev/hidraw3", 990, 0o660, &alice(vec![1000]), &groups, true);
        assert!(r.contains("usermod -aG cablebridge alice"), "{r}");
        let r = remedy("/dev/hidraw3", 46, 0o660, &alice(vec![1000]), &groups, false);
        assert!(r.contains("group 'plugdev'"), "{r}");
        // root:root 0600 and no rule: install it (the group exists, so no sysusers step).
        let r = remedy("/dev/hidraw3", 0, 0o600, &alice(vec![1000]), &groups, false);
        assert!(r.contains("cp systemd/70-cablebridge.rules /etc/udev/rules.d/"), "{r}");
        assert!(!r.contains("systemd-sysusers"), "{r}");
        let bare = Groups::parse("root:x:0:\n");
        let r = remedy("/dev/hidraw3", 0, 0o600, &alice(vec![1000]), &bare, false);
        assert!(r.contains("systemd-sysusers"), "{r}");
        // Rule installed but the node is still root's: it did not apply.
        let r = remedy("/dev/hidraw3", 0, 0o600, &alice(vec![1000]), &groups, true);
        assert!(r.contains("did not apply") && r.contains("ID_FIDO_TOKEN"), "{r}");
    }

    #[test]
    fn empty_sysfs_skips_both_checks() {
        let dir = tempfile::tempdir().unwrap();
        let opts = DoctorOptions {
            sys_root: dir.path().to_path_buf(),
            dev_root: dir.path().to_path_buf(),
            ..DoctorOptions::default()
        };
        let checks = run(&opts);
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| c.status == super::super::Status::Skip), "{checks:?}");
    }
}
