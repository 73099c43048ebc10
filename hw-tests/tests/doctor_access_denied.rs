//! Sim tier: `doctor` on a bus whose policy refuses method calls to org.bluez (a user outside the
//! `bluetooth` group on a locked-down system bus). Its own binary: its own bus.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridged::doctor::{bluetooth, Status};
use common::{denying_bus_with_hci0, offline_doctor_options};
use std::time::Duration;
use tokio::time::timeout;

#[tokio::test]
async fn bus_policy_denial_fails_permission_with_a_group_remedy() {
    let (_bus, _mock) = denying_bus_with_hci0().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = offline_doctor_options(dir.path(), Duration::from_secs(1));
    let checks = timeout(Duration::from_secs(20), bluetooth::run(&opts)).await.unwrap();
    let get = |id: &str| checks.iter().find(|c| c.id == id).unwrap();
    assert_eq!(get("bluetooth.bus").status, Status::Pass);
    // Asking the bus daemon who owns org.bluez is allowed; calling BlueZ is not.
    assert_eq!(get("bluetooth.bluez").status, Status::Pass);
    let perm = get("bluetooth.permission");
    assert_eq!(perm.status, Status::Fail, "{perm:?}");
    assert!(perm.detail.contains("may not use BlueZ"), "{perm:?}");
    assert!(perm.detail.contains("D-Bus policy refused"), "{perm:?}");
    let remedy = perm.remedy.as_deref().unwrap();
    assert!(
        remedy.contains("usermod -aG") && remedy.contains("send_destination=\"org.bluez\""),
        "{remedy}"
    );
    for id in ["bluetooth.adapter", "bluetooth.scan", "bluetooth.advertising"] {
        let c = get(id);
        assert_eq!(c.status, Status::Skip, "{c:?}");
        assert!(c.detail.contains("see bluetooth.permission"), "{c:?}");
    }
}
