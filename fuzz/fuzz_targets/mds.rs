//! FIDO metadata (MDS3) blobs (daemon/src/evidence/aaguid.rs): a JWT or its payload JSON, with
//! names and base64 attestation roots per AAGUID, merged into the built-in table.
#![no_main]

use cablebridged::evidence::AaguidTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut table = AaguidTable::built_in();
    if let Ok(added) = table.extend_from_mds(data) {
        assert!(added <= data.len(), "more names than bytes");
    }
});
