//! Who are we, and which groups exist: the inputs of "which group to join" remedies.
//!
//! Read from `/proc/self/status` (`Uid:`, `Gid:`, `Groups:`) and `/etc/passwd` / `/etc/group`
//! rather than through libc calls: no `unsafe`, and the same files the admin would edit. NSS
//! sources other than files (LDAP, sssd) are not consulted; names then fall back to numbers.

use std::fs;

/// The process's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Account {
    /// Real uid.
    pub uid: u32,
    /// User name, or the uid as text when unknown.
    pub user: String,
    /// Primary and supplementary gids.
    pub gids: Vec<u32>,
}

impl Account {
    /// The current process.
    pub fn current() -> Account {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()).collect())
                .unwrap_or_default()
        };
        let uid = field("Uid:").first().copied().unwrap_or(u32::MAX);
        let mut gids = field("Gid:").into_iter().take(1).collect::<Vec<_>>();
        gids.extend(field("Groups:"));
        gids.dedup();
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let user = passwd
            .lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let _pw = f.next()?;
                (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
            })
            .next()
            .unwrap_or_else(|| uid.to_string());
        Account { uid, user, gids }
    }

    /// Whether the process is in group `gid`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gids.contains(&gid)
    }
}

/// `/etc/group`: name ↔ gid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Groups(Vec<(String, u32)>);

impl Groups {
    /// Reads `/etc/group` (empty when unreadable).
    pub fn load() -> Groups {
        Groups::parse(&fs::read_to_string("/etc/group").unwrap_or_default())
    }
    /// Parses `name:x:gid:members` lines.
    pub fn parse(text: &str) -> Groups {
        Groups(
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let _pw = f.next()?;
                    Some((name.to_owned(), f.next()?.parse().ok()?))
                })
                .collect(),
        )
    }
    /// Name of `gid`, or the number.
    pub fn name(&self, gid: u32) -> String {
        self.0
            .iter()
            .find(|(_, g)| *g == gid)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| gid.to_string())
    }
    /// Gid of the group called `name`.
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, g)| *g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_and_lookup() {
        let g =
            Groups::parse("root:x:0:\nbluetooth:x:112:alice\nbroken line\ncablebridge:x:990:\n");
        assert_eq!(g.gid("bluetooth"), Some(112));
        assert_eq!(g.name(990), "cablebridge");
        assert_eq!(g.name(5), "5");
        assert_eq!(g.gid("nope"), None);
    }

    #[test]
    fn current_account_is_read() {
        let a = Account::current();
        assert_ne!(a.uid, u32::MAX, "/proc/self/status has a Uid line");
        assert!(!a.user.is_empty());
    }
}
