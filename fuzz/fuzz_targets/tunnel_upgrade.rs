//! The tunnel server's upgrade requests (daemon/src/tunnel/server/upgrade.rs): raw bytes of one
//! or more HTTP requests, through tungstenite's request parser and our decision (path shapes,
//! ids, subprotocol list, client payload header, listen secret, revocation), against one server
//! state that persists over the requests of one input (so `/cable/new` then `/cable/connect`
//! with the harness's fixed routing id `a1b2c3` pair up, as in the seeds). Also the
//! protocol-side parsers of the same strings: `TunnelPath::parse` and
//! `ClientPayload::parse_header`.
#![no_main]

use cablebridge_protocol::hybrid::tunnel::{ClientPayload, TunnelPath};
use cablebridged::tunnel::server::fuzzing::UpgradeHarness;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut server = UpgradeHarness::new();
    // Requests are separated by a NUL byte (never valid inside an HTTP head).
    for request in data.split(|&b| b == 0).take(8) {
        if let Some(status) = server.request(request) {
            assert!((100..600).contains(&status), "status {status}");
        }
        if let Ok(text) = std::str::from_utf8(request) {
            for line in text.lines().take(32) {
                let _ = TunnelPath::parse(line);
                if let Some((_, value)) = line.split_once(':') {
                    let _ = ClientPayload::parse_header(value);
                }
            }
        }
    }
    server.close_all();
    assert_eq!(server.registry_entries(), 0, "closed connections left registry entries behind");
});
