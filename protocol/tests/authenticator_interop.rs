//! The authenticator's responses decode and verify with the `ctap2` platform-side types (written
//! independently on the ctap2 branch): the two halves agree on the wire format.

// Helpers outside #[test] fns unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

mod authenticator_support;

use authenticator_support::*;
use cablebridge_protocol::authenticator::{AttestationMode, Config};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    AttestationObject, AttestationType, GetInfo, MakeCredentialResponse,
};

#[test]
fn attestation_objects_verify_with_ctap2_types() {
    for (mode, want) in [
        (AttestationMode::None, AttestationType::None),
        (AttestationMode::PackedSelf, AttestationType::SelfAttestation),
        (AttestationMode::PackedTestCa, AttestationType::Basic),
    ] {
        let mut h = Harness::new(Config { attestation: mode, ..Config::virtual_phone() });
        let resp = h.ok(0x01, Some(make_credential("example.com", b"u", true)));
        let resp = MakeCredentialResponse::from_cbor(&resp).unwrap();
        let obj = AttestationObject::from(resp);
        assert_eq!(obj.verify(&CDH).unwrap(), want, "{mode:?}");
        assert!(obj.auth_data().unwrap().is_for_rp("example.com"));
        let wrong_cdh = [0u8; 32];
        if want != AttestationType::None {
            assert!(obj.verify(&wrong_cdh).is_err(), "{mode:?} signature covers clientDataHash");
        }
    }
}

#[test]
fn get_info_decodes_with_ctap2_types() {
    let mut h = Harness::new(Config::virtual_key());
    let info: Value = h.ok(0x04, None);
    let parsed = GetInfo::from_cbor(&info).unwrap();
    let (again, original) = (parsed.to_cbor().to_vec(), info.to_vec());
    assert_eq!(again, original, "no field lost in a decode/encode round trip");
}
