//! Who may use the control socket: each connection's SO_PEERCRED (uid, gid, pid from the
//! kernel, not from the client) checked against `[control]` of the configuration.
//!
//! A peer is allowed when it is root (unless `allow_root = false`), its uid is listed in
//! `allowed_uids`, or one of its groups is listed in `allowed_groups` — its primary gid as the
//! kernel reports it, or a supplementary group of its user (`getgrouplist(3)` through `nix`).
//! The socket's own mode (0660, group `cablebridge`) is the first gate; this check is the second,
//! and it also covers sockets systemd created or a test bound in a temporary directory.

use crate::config::ControlConfig;
use nix::unistd::{Gid, Group, Uid, User};

/// The kernel's view of the process at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Process id (absent when the peer is in another pid namespace).
    pub pid: Option<i32>,
}

/// Why a peer was refused or allowed (the log line says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed, with the rule that allowed it.
    Allowed(String),
    /// Refused: no rule matched.
    Refused(String),
}

impl Verdict {
    /// Whether the peer may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed(_))
    }
}

/// Resolves group names and a user's groups (the real one uses NSS; tests inject their own).
pub trait GroupDb {
    /// The gid of group `name`, if it exists.
    fn gid_of(&self, name: &str) -> Option<u32>;
    /// All groups of user `uid` (primary + supplementary), when the user is known.
    fn groups_of(&self, uid: u32, gid: u32) -> Vec<u32>;
}

/// The system's databases (`/etc/group`, NSS).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemGroups;

impl GroupDb for SystemGroups {
    fn gid_of(&self, name: &str) -> Option<u32> {
        Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
    }

    fn groups_of(&self, uid: u32, gid: u32) -> Vec<u32> {
        let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
            return vec![gid];
        };
        let Ok(name) = std::ffi::CString::new(user.name) else {
            return vec![gid];
        };
        match nix::unistd::getgrouplist(&name, Gid::from_raw(gid)) {
            Ok(groups) => groups.into_iter().map(Gid::as_raw).collect(),
            Err(_) => vec![gid],
        }
    }
}

/// Checks `peer` against `config`.
pub fn check(peer: &PeerCred, config: &ControlConfig, db: &impl GroupDb) -> Verdict {
    if peer.uid == 0 && config.allow_root {
        return Verdict::Allowed("root".into());
    }
    if config.allowed_uids.contains(&peer.uid) {
        return Verdict::Allowed(format!("uid {} is in allowed_uids", peer.uid));
    }
    if !config.allowed_groups.is_empty() {
        let wanted: Vec<(String, u32)> = config
            .allowed_groups
            .iter()
            .filter_map(|name| db.gid_of(name).map(|gid| (name.clone(), gid)))
            .collect();
        if let Some((name, _)) = wanted.iter().find(|(_, gid)| *gid == peer.gid) {
            return Verdict::Allowed(format!("primary group {name} is allowed"));
        }
        let groups = db.groups_of(peer.uid, peer.gid);
        if let Some((name, _)) = wanted.iter().find(|(_, gid)| groups.contains(gid)) {
            return Verdict::Allowed(format!("member of allowed group {name}"));
        }
    }
    Verdict::Refused(format!(
        "uid {} gid {} matches no rule (allow_root = {}, allowed_uids {:?}, allowed_groups {:?})",
        peer.uid, peer.gid, config.allow_root, config.allowed_uids, config.allowed_groups
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Db;
    impl GroupDb for Db {
        fn gid_of(&self, name: &str) -> Option<u32> {
            match name {
                "cablebridge" => Some(990),
                "lab" => Some(991),
                _ => None,
            }
        }
        fn groups_of(&self, uid: u32, gid: u32) -> Vec<u32> {
            if uid == 1001 {
                vec![gid, 991]
            } else {
                vec![gid]
            }
        }
    }

    fn peer(uid: u32, gid: u32) -> PeerCred {
        PeerCred { uid, gid, pid: Some(1) }
    }

    #[test]
    fn root_uid_groups() {
        let mut c = ControlConfig::default();
        assert!(check(&peer(0, 0), &c, &Db).is_allowed());
        assert!(check(&peer(1000, 990), &c, &Db).is_allowed(), "primary group cablebridge");
        assert!(!check(&peer(1001, 1001), &c, &Db).is_allowed(), "lab is not allowed yet");
        c.allowed_groups.push("lab".into());
        assert_eq!(
            check(&peer(1001, 1001), &c, &Db),
            Verdict::Allowed("member of allowed group lab".into())
        );
        c.allowed_uids.push(1002);
        assert!(check(&peer(1002, 1002), &c, &Db).is_allowed());
        c.allow_root = false;
        let v = check(&peer(0, 0), &c, &Db);
        assert!(matches!(&v, Verdict::Refused(m) if m.contains("uid 0")), "{v:?}");
        c.allowed_groups.push("nosuchgroup".into());
        assert!(!check(&peer(1003, 1003), &c, &Db).is_allowed());
    }

    #[test]
    fn the_system_database_answers_for_root() {
        // Runs against the real NSS: root exists everywhere and is in group 0.
        assert!(SystemGroups.groups_of(0, 0).contains(&0));
        assert_eq!(SystemGroups.gid_of("root"), Some(0));
    }
}
