//! `cablebridge devices --watch`: the keys attached now, then one line per FIDO key plugged in
//! or removed, from kernel uevents ([`HotplugMonitor`]), until Ctrl-C.
//!
//! The monitor is opened before enumerating so a key plugged in meanwhile is not missed (it may
//! then be printed twice, as present and added; a consumer keys on the path). Removed nodes no
//! longer have sysfs attributes, so removals reuse what was known when the key was seen; a
//! removed node never seen as a FIDO key is not printed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use cablebridged::hid::sysfs::examine;
use cablebridged::hid::{enumerate, HidrawInfo, HidrawOptions, HotplugEvent, HotplugMonitor};
use futures_util::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::output::{CmdError, Report};

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEvent {
    /// Attached when the watch started.
    Present,
    /// Plugged in.
    Added,
    /// Unplugged.
    Removed,
}

impl WatchEvent {
    fn as_str(self) -> &'static str {
        match self {
            WatchEvent::Present => "present",
            WatchEvent::Added => "added",
            WatchEvent::Removed => "removed",
        }
    }
}

/// One output line (no newline): JSON with `json`, else human text.
pub fn line(event: WatchEvent, path: &Path, info: Option<&HidrawInfo>, json: bool) -> String {
    if json {
        let hex = |v: Option<u16>| v.map(|v| format!("{v:04x}"));
        return json!({
            "event": event.as_str(),
            "path": path.display().to_string(),
            "vendor_id": hex(info.and_then(|i| i.vendor_id)),
            "product_id": hex(info.and_then(|i| i.product_id)),
            "product": info.and_then(|i| i.product.clone().or_else(|| i.hid_name.clone())),
        })
        .to_string();
    }
    match info {
        Some(info) => format!("{}: {}", event.as_str(), info.describe()),
        None => format!("{}: {}", event.as_str(), path.display()),
    }
}

/// Keys seen so far, so a removal can say which key went.
#[derive(Debug, Default)]
pub struct Tracker {
    known: HashMap<PathBuf, HidrawInfo>,
}

impl Tracker {
    /// Records a key present or added; returns the line to print.
    pub fn seen(&mut self, event: WatchEvent, info: HidrawInfo, json: bool) -> String {
        let out = line(event, &info.path, Some(&info), json);
        self.known.insert(info.path.clone(), info);
        out
    }

    /// A node went away: the line to print when it was a key we knew.
    pub fn removed(&mut self, path: &Path, json: bool) -> Option<String> {
        let info = self.known.remove(path)?;
        Some(line(WatchEvent::Removed, path, Some(&info), json))
    }
}

fn emit(text: &str) -> Result<(), CmdError> {
    let mut out = std::io::stdout().lock();
    // Flushed per line so `| jq` and friends see each event as it happens.
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| CmdError::environment(format!("cannot write to stdout: {e}")))
}

/// Runs the watch until `cancel` (Ctrl-C).
pub async fn run(cancel: CancellationToken, json: bool) -> Result<Report, CmdError> {
    let roots = HidrawOptions::default().roots;
    let mut monitor = HotplugMonitor::open(&roots.dev)
        .map_err(|e| CmdError::environment(format!("cannot watch for security keys: {e}")))?;
    let mut tracker = Tracker::default();
    for info in enumerate(&roots).devices {
        emit(&tracker.seen(WatchEvent::Present, info, json))?;
    }
    if !json {
        eprintln!("cablebridge: watching for security keys; Ctrl-C to stop");
    }
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => break,
            event = monitor.next() => event,
        };
        match event {
            None => break,
            Some(Ok(HotplugEvent::Added(path))) => {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
                match examine(&roots, name) {
                    Ok(Some(info)) => emit(&tracker.seen(WatchEvent::Added, info, json))?,
                    Ok(None) => {}
                    Err(reason) => eprintln!("cablebridge: cannot examine {name}: {reason}"),
                }
            }
            Some(Ok(HotplugEvent::Removed(path))) => {
                if let Some(text) = tracker.removed(&path, json) {
                    emit(&text)?;
                }
            }
            // E.g. a receive error; the socket keeps delivering later events.
            Some(Err(e)) => eprintln!("cablebridge: hot-plug event error: {e}"),
        }
    }
    Ok(Report::new().field("event", "stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cablebridged::hid::descriptor::FidoReportLayout;

    fn yubikey(n: u32) -> HidrawInfo {
        HidrawInfo {
            path: PathBuf::from(format!("/dev/hidraw{n}")),
            name: format!("hidraw{n}"),
            bus: Some(3),
            vendor_id: Some(0x1050),
            product_id: Some(0x0407),
            hid_name: Some("Yubico YubiKey OTP+FIDO+CCID".into()),
            manufacturer: Some("Yubico".into()),
            product: Some("YubiKey OTP+FIDO+CCID".into()),
            serial: None,
            layout: FidoReportLayout { report_id: None, input_len: 64, output_len: 64 },
        }
    }

    #[test]
    fn json_lines_have_the_documented_shape() {
        let text = line(WatchEvent::Added, Path::new("/dev/hidraw3"), Some(&yubikey(3)), true);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"event": "added", "path": "/dev/hidraw3", "vendor_id": "1050",
                   "product_id": "0407", "product": "YubiKey OTP+FIDO+CCID"})
        );
        assert!(!text.contains('\n'));
        let unknown = line(WatchEvent::Removed, Path::new("/dev/hidraw9"), None, true);
        let v: serde_json::Value = serde_json::from_str(&unknown).unwrap();
        assert_eq!(v["event"], "removed");
        assert_eq!(v["vendor_id"], serde_json::Value::Null);
    }

    #[test]
    fn human_lines_describe_the_key() {
        let text = line(WatchEvent::Present, Path::new("/dev/hidraw3"), Some(&yubikey(3)), false);
        assert_eq!(text, "present: /dev/hidraw3: Yubico YubiKey OTP+FIDO+CCID (1050:0407)");
    }

    #[test]
    fn removal_reuses_what_was_known_and_ignores_strangers() {
        let mut t = Tracker::default();
        t.seen(WatchEvent::Added, yubikey(4), true);
        // A non-FIDO node (mouse) going away prints nothing.
        assert_eq!(t.removed(Path::new("/dev/hidraw1"), true), None);
        let gone = t.removed(Path::new("/dev/hidraw4"), false).unwrap();
        assert_eq!(gone, "removed: /dev/hidraw4: Yubico YubiKey OTP+FIDO+CCID (1050:0407)");
        // Only once.
        assert_eq!(t.removed(Path::new("/dev/hidraw4"), false), None);
    }
}
