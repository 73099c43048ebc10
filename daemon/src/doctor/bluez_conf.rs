//! `bluetooth.policy`: settings in BlueZ's `/etc/bluetooth/main.conf` that break or weaken hybrid.
//!
//! What is looked for, and why (BlueZ's own main.conf documents each key):
//! * `[General] ControllerMode = bredr` — LE is switched off in the controller: no LE scanning, so
//!   no caBLE advert can ever be heard (fail).
//! * `[Policy] AutoEnable = false` — adapters stay powered off after boot, resume or re-plug
//!   (BlueZ < 5.65 defaulted to false); browsers then offer "use a phone" and fail (warn).
//! * `[LE] ScanWindowDiscovery` much smaller than `ScanIntervalDiscovery` — a low discovery duty
//!   cycle makes the desktop miss the phone's adverts, which only last while the user waits
//!   (warn below 25 %).
//!
//! A missing file means BlueZ's defaults, which are fine for hybrid. Parsing is a minimal INI
//! reader (sections, `key = value`, `#`/`;` comments), as BlueZ's GKeyFile reads it.

use super::{Check, Status};
use std::path::Path;

const ID: &str = "bluetooth.policy";

/// `(section, key, value)` triples, in file order.
pub(crate) fn parse(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn number(v: &str) -> Option<u32> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Judges the settings of one main.conf text.
pub(crate) fn judge(path: &Path, text: &str) -> Check {
    let entries = parse(text);
    let get = |section: &str, key: &str| {
        entries.iter().rev().find(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str())
    };
    let shown = path.display();
    let mut problems: Vec<(Status, String, String)> = Vec::new();
    if let Some(mode) = get("General", "ControllerMode") {
        if mode.eq_ignore_ascii_case("bredr") {
            problems.push((
                Status::Fail,
                "ControllerMode = bredr disables Bluetooth LE, so no caBLE advert can be heard"
                    .into(),
                format!("set ControllerMode = dual (or le) under [General] in {shown}, then systemctl restart bluetooth"),
            ));
        }
    }
    if let Some(v) = get("Policy", "AutoEnable") {
        if v.eq_ignore_ascii_case("false") {
            problems.push((
                Status::Warn,
                "AutoEnable = false leaves adapters powered off after boot, resume or re-plug"
                    .into(),
                format!("set AutoEnable = true under [Policy] in {shown}"),
            ));
        }
    }
    if let (Some(window), Some(interval)) = (
        get("LE", "ScanWindowDiscovery").and_then(number),
        get("LE", "ScanIntervalDiscovery").and_then(number),
    ) {
        if interval > 0 && window.saturating_mul(4) < interval {
            problems.push((
                Status::Warn,
                format!(
                    "LE discovery scans {window} of every {interval} slots ({}%), so short-lived \
                     phone adverts are easily missed",
                    window.saturating_mul(100) / interval
                ),
                format!(
                    "remove ScanWindowDiscovery/ScanIntervalDiscovery from [LE] in {shown} (or \
                     make the window at least a quarter of the interval)"
                ),
            ));
        }
    }
    if problems.is_empty() {
        return Check::pass(
            ID,
            format!(
                "{shown}: no setting that breaks hybrid (checked ControllerMode, AutoEnable, LE \
                 discovery scan window)"
            ),
        );
    }
    let status = problems.iter().map(|p| p.0).max().unwrap_or(Status::Warn);
    let detail = problems.iter().map(|p| p.1.as_str()).collect::<Vec<_>>().join("; ");
    let remedy = problems.iter().map(|p| p.2.as_str()).collect::<Vec<_>>().join("; ");
    Check { id: ID.into(), status, detail: format!("{shown}: {detail}"), remedy: Some(remedy) }
}

/// Reads and judges `path`.
pub(crate) fn check(path: &Path) -> Check {
    match std::fs::read_to_string(path) {
        Ok(text) => judge(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::pass(
            ID,
            format!("no {} (BlueZ defaults apply, which suit hybrid)", path.display()),
        ),
        Err(e) => Check::skip(ID, format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_break_hybrid_are_named() {
        let p = Path::new("/etc/bluetooth/main.conf");
        let ok = judge(p, "[General]\n#ControllerMode = bredr\nControllerMode = dual\n[Policy]\nAutoEnable=true\n");
        assert_eq!(ok.status, Status::Pass, "{ok:?}");

        let off = judge(p, "[Policy]\nAutoEnable = false\n");
        assert_eq!(off.status, Status::Warn);
        assert!(off.remedy.as_deref().unwrap_or("").contains("AutoEnable = true"));

        let bredr = judge(p, "[General]\nControllerMode = bredr\n[Policy]\nAutoEnable=false\n");
        assert_eq!(bredr.status, Status::Fail);
        assert!(bredr.detail.contains("disables Bluetooth LE"), "{bredr:?}");
        assert!(bredr.detail.contains("AutoEnable"), "both problems listed: {bredr:?}");

        let duty = judge(p, "[LE]\nScanIntervalDiscovery=0x0100\nScanWindowDiscovery=0x0010\n");
        assert_eq!(duty.status, Status::Warn);
        assert!(duty.detail.contains("6%"), "{duty:?}");
    }

    #[test]
    fn missing_file_means_defaults() {
        let c = check(Path::new("/nonexistent/cablebridge/main.conf"));
        assert_eq!(c.status, Status::Pass);
        assert!(c.detail.contains("defaults"));
    }
}
