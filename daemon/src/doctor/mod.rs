//! `doctor`: will cross-device passkeys (and USB keys) work on this machine, and if not, why?
//!
//! Every check is data — [`Check`] `{id, status, detail, remedy}` — so the CLI can print a table
//! or JSON and the daemon's `doctor.run` method can return the same list, run as the service user
//! (which is what matters for a service). Sections, each its own module:
//!
//! * [`bluetooth`] — `bluetooth.{bus,bluez,adapter,powered,rfkill,permission,scan,advertising,policy}`:
//!   the real scanner ([`crate::ble::scan`], btleplug) and advertiser
//!   ([`crate::ble::AdvertisingAdapter`], zbus) run, so each failure shape of
//!   ../shared/notes/testing-without-radios.md lands on its own check with its own remedy.
//! * [`network`] — `tunnel.<host>.{dns,tcp,tls,websocket}` for the assigned tunnel hosts, Apple's
//!   app-site-association hosts and `--tunnel-host` ones, plus `tunnel.proxy`. Each step has its
//!   own short timeout; `--resolve` points hosts at local servers for tests.
//! * [`hid`] — `hid.devices`, `hid.permissions` (which group or udev rule fixes a denied node).
//! * [`service`] — `service.status`: the daemon's control socket answers JSON-RPC `version`.
//! * [`policy`] — `policy.*` with a tenant's Passkey (FIDO2) policy export: settings that stop
//!   cross-device passkeys (the model and profile selection are [`crate::policy`]'s).
//!
//! What this is not: a ceremony verdict (that is [`crate::policy::evaluate`]) or a fixer — the doctor changes nothing, except that scanning and the advertisement probe power an
//! off (not blocked) adapter on, exactly as a ceremony would.

pub mod bluetooth;
mod bluez_conf;
pub mod hid;
pub mod network;
mod os;
pub mod policy;
pub mod service;
mod tls;
pub mod uhid;

pub use network::{ResolveOverride, ResolveTarget};

use serde_json::{json, Value};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Outcome of one check, ordered by severity for summaries (`Pass < Skip < Warn < Fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Works.
    Pass,
    /// Not applicable or not testable here (the detail says why).
    Skip,
    /// Works now, but something is likely to break it or limits it.
    Warn,
    /// Broken: the remedy says what to change.
    Fail,
}

impl Status {
    /// `pass`, `warn`, `fail` or `skip` (the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One diagnosis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable dotted name, e.g. `bluetooth.rfkill` or `tunnel.cable.ua5v.com.tls`.
    pub id: String,
    /// The verdict.
    pub status: Status,
    /// What was measured or found, in one line.
    pub detail: String,
    /// What to change (which endpoint to allow, which setting, which group); `None` on pass.
    pub remedy: Option<String>,
}

impl Check {
    fn new(id: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check { id: id.into(), status, detail: detail.into(), remedy: None }
    }
    /// A passing check.
    pub fn pass(id: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Pass, detail)
    }
    /// A skipped check (not applicable or not testable).
    pub fn skip(id: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Skip, detail)
    }
    /// A warning with its remedy.
    pub fn warn(
        id: impl Into<String>,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check::new(id, Status::Warn, detail).with_remedy(remedy)
    }
    /// A failure with its remedy.
    pub fn fail(
        id: impl Into<String>,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check::new(id, Status::Fail, detail).with_remedy(remedy)
    }
    /// Attaches (or replaces) the remedy.
    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Check {
        self.remedy = Some(remedy.into());
        self
    }
    /// `{"id","status","detail","remedy"}` (`remedy` is null when there is nothing to do).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status.as_str(),
            "detail": self.detail,
            "remedy": self.remedy,
        })
    }
}

/// Everything the doctor found, in a fixed section order (bluetooth, tunnel, hid, service, policy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorReport {
    /// The checks.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// `true` when at least one check failed (the CLI then exits 1).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }
    /// The check with this id.
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
    /// How many checks have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
    /// `{"checks":[...]}`.
    pub fn to_json(&self) -> Value {
        json!({ "checks": self.checks.iter().map(Check::to_json).collect::<Vec<_>>() })
    }
}

/// What to check and where. [`Default`] is the real machine with the production endpoints.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// Length of the Bluetooth scan window; zero skips `bluetooth.scan`.
    pub scan_window: Duration,
    /// Limit for each single step (a D-Bus call, DNS, TCP connect, TLS handshake, upgrade).
    pub step_timeout: Duration,
    /// Tunnel hosts probed besides the two assigned ones (`--tunnel-host`).
    pub extra_tunnel_hosts: Vec<String>,
    /// Resolver overrides (`--resolve HOST:ADDR`), consulted before DNS.
    pub resolve: Vec<ResolveOverride>,
    /// Trust only these roots for the tunnel TLS checks (`--ca-file`); `None` = system roots.
    pub tls_roots: Option<Arc<rustls::RootCertStore>>,
    /// The daemon's control socket.
    pub control_socket: PathBuf,
    /// sysfs mount point (`/sys`): rfkill switches and hidraw nodes.
    pub sys_root: PathBuf,
    /// Where hidraw device nodes live (`/dev`).
    pub dev_root: PathBuf,
    /// BlueZ's configuration file.
    pub bluez_main_conf: PathBuf,
    /// Proxy-related environment (`HTTPS_PROXY`...); `None` reads the process environment.
    pub proxy_env: Option<Vec<(String, String)>>,
    /// The tenant's policy and the selected profile (`--policy`, `--profile`): adds `policy.*`.
    pub policy: Option<crate::policy::SelectedPolicy>,
    /// AAGUID inventory of registered passkeys (`--registered`), with counts.
    pub registered: Option<Vec<(crate::evidence::Aaguid, usize)>>,
    /// The uhid front's device node when the front is on: adds `uhid.permissions`.
    pub uhid_device: Option<PathBuf>,
}

/// The daemon's default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/cablebridge/control.sock";

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            scan_window: Duration::from_secs(5),
            step_timeout: Duration::from_secs(5),
            extra_tunnel_hosts: Vec::new(),
            resolve: Vec::new(),
            tls_roots: None,
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            sys_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/dev"),
            bluez_main_conf: PathBuf::from("/etc/bluetooth/main.conf"),
            proxy_env: None,
            policy: None,
            registered: None,
            uhid_device: None,
        }
    }
}

impl DoctorOptions {
    /// Reads a PEM file of trust anchors for `tls_roots` (`--ca-file`). The error names the path.
    pub fn load_ca_file(path: &std::path::Path) -> Result<Arc<rustls::RootCertStore>, String> {
        tls::load_roots(path)
    }
}

/// Runs every section concurrently and returns the checks in section order. Never fails: each
/// problem is a check. Bounded: every network and D-Bus step has `step_timeout`, the scan its
/// window.
pub async fn run(opts: &DoctorOptions) -> DoctorReport {
    let (bt, net, svc) = tokio::join!(bluetooth::run(opts), network::run(opts), service::run(opts));
    let mut checks = bt;
    checks.extend(net);
    checks.extend(hid::run(opts));
    if let Some(device) = &opts.uhid_device {
        checks.push(uhid::check(device));
    }
    checks.extend(svc);
    if let Some(sel) = &opts.policy {
        checks.extend(policy::checks(sel, opts.registered.as_deref()));
    }
    DoctorReport { checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon's `doctor.run` method spawns the run on its runtime: the future must be `Send`.
    #[test]
    fn run_is_send_and_report_json_has_the_four_fields() {
        fn assert_send<T: Send>(_: &T) {}
        let opts = DoctorOptions::default();
        let fut = run(&opts);
        assert_send(&fut);
        drop(fut);
        let report = DoctorReport {
            checks: vec![
                Check::pass("a.b", "fine"),
                Check::fail("c.d", "broken", "fix it"),
                Check::skip("e.f", "n/a"),
            ],
        };
        assert!(report.failed());
        assert_eq!(report.count(Status::Skip), 1);
        let j = report.to_json();
        assert_eq!(j["checks"][0]["remedy"], serde_json::Value::Null);
        assert_eq!(j["checks"][1]["status"], "fail");
        assert_eq!(j["checks"][1]["remedy"], "fix it");
        assert_eq!(j["checks"][2]["detail"], "n/a");
        assert!(
            Status::Fail > Status::Warn
                && Status::Warn > Status::Skip
                && Status::Skip > Status::Pass
        );
    }
}
