//! Attestation objects and authenticator data against a real-world sample (a packed attestation
//! with an x5c chain from a YubiKey preview, published in python-fido2's test suite), plus
//! self-attestation and assertion signatures produced by the builder side.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::attestation::leaf_public_key;
use cablebridge_protocol::ctap2::verify::verify_assertion;
use cablebridge_protocol::ctap2::{
    AttestationObject, AttestationStatement, AttestationType, AttestedCredentialData,
    AuthDataFlags, AuthenticatorData, CoseAlgorithm, CoseKey, Ctap2Error, GetAssertionResponse,
    MakeCredentialResponse,
};
use p256::ecdsa::signature::Signer;
use rand::SeedableRng;

const CLIENT_DATA_HASH: &str = "985B6187D042FB1258892ED637CEC88617DDF5F6632351A545617AA2B75261BF";
const AUTH_DATA: &str = "0021f5fc0b85cd22e60623bcd7d1ca48948909249b4776eb515154e57b66ae124100000003f8a011f38c0a4d15800617111f9edc7d004060a386206a3aacecbdbb22d601853d955fdc5d11adfbd1aa6a950d966b348c7663d40173714a9f987df6461beadfb9cd6419ffdfe4d4cf2eec1aa605a4f59bdaa50102032620012158200edb27580389494d74d2373b8f8c2e8b76fa135946d4f30d0e187e120b423349225820e03400d189e85a55de9ab0f538ed60736eb750f5f0306a80060fe1b13010560d";
const SIG: &str = "304502200d15daf337d727ab4719b4027114a2ac43cd565d394ced62c3d9d1d90825f0b3022100989615e7394c87f4ad91f8fdae86f7a3326df332b3633db088aac76bffb9a46b";
const CERT: &str = "308202b73082019fa00302010202041d31330d300d06092a864886f70d01010b0500302a3128302606035504030c1f59756269636f2050726576696577204649444f204174746573746174696f6e301e170d3138303332383036333932345a170d3139303332383036333932345a306e310b300906035504061302534531123010060355040a0c0959756269636f20414231223020060355040b0c1941757468656e74696361746f72204174746573746174696f6e3127302506035504030c1e59756269636f205532462045452053657269616c203438393736333539373059301306072a8648ce3d020106082a8648ce3d030107034200047d71e8367cafd0ea6cf0d61e4c6a416ba5bb6d8fad52db2389ad07969f0f463bfdddddc29d39d3199163ee49575a3336c04b3309d607f6160c81e023373e0197a36c306a302206092b0601040182c40a020415312e332e362e312e342e312e34313438322e312e323013060b2b0601040182e51c0201010404030204303021060b2b0601040182e51c01010404120410f8a011f38c0a4d15800617111f9edc7d300c0603551d130101ff04023000300d06092a864886f70d01010b050003820101009b904ceadbe1f1985486fead02baeaa77e5ab4e6e52b7e6a2666a4dc06e241578169193b63dadec5b2b78605a128b2e03f7fe2a98eaeb4219f52220995f400ce15d630cf0598ba662d7162459f1ad1fc623067376d4e4091be65ac1a33d8561b9996c0529ec1816d1710786384d5e8783aa1f7474cb99fe8f5a63a79ff454380361c299d67cb5cc7c79f0d8c09f8849b0500f6d625408c77cbbc26ddee11cb581beb7947137ad4f05aaf38bd98da10042ddcac277604a395a5b3eaa88a5c8bb27ab59c8127d59d6bbba5f11506bf7b75fda7561a0837c46f025fd54dcf1014fc8d17c859507ac57d4b1dea99485df0ba8f34d00103c3eef2ef3bbfec7a6613de";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn cdh() -> [u8; 32] {
    h(CLIENT_DATA_HASH).try_into().unwrap()
}

/// The CTAP (integer-keyed) makeCredential response body, assembled from the sample's parts.
fn ctap_body() -> Value {
    let stmt = Value::text_map([
        ("alg", Value::int(-7)),
        ("sig", Value::bytes(h(SIG))),
        ("x5c", Value::Array(vec![Value::bytes(h(CERT))])),
    ]);
    Value::int_map([(1, Value::text("packed")), (2, Value::bytes(h(AUTH_DATA))), (3, stmt)])
}

#[test]
fn real_world_auth_data_parses() {
    let ad = AuthenticatorData::parse(&h(AUTH_DATA)).unwrap();
    assert_eq!(ad.flags.0, 0x41);
    assert!(ad.flags.contains(AuthDataFlags::UP) && ad.flags.contains(AuthDataFlags::AT));
    assert!(!ad.flags.contains(AuthDataFlags::UV));
    assert_eq!(ad.sign_count, 3);
    let cred = ad.attested_credential.as_ref().unwrap();
    assert_eq!(hex::encode(cred.aaguid), "f8a011f38c0a4d15800617111f9edc7d");
    assert_eq!(cred.credential_id.len(), 0x40);
    assert_eq!(cred.public_key.alg(), Some(CoseAlgorithm::Es256));
    assert!(ad.extensions.is_none());
    // The sample is canonical, so building it back is byte-identical.
    assert_eq!(ad.to_bytes().unwrap(), h(AUTH_DATA));
}

#[test]
fn real_world_packed_x5c_attestation_verifies() {
    let resp =
        MakeCredentialResponse::from_cbor(&Value::decode(&ctap_body().to_vec()).unwrap()).unwrap();
    let obj = AttestationObject::from(resp);
    assert_eq!(obj.verify(&cdh()), Ok(AttestationType::Basic));
    // And through the WebAuthn text-keyed encoding.
    let again = AttestationObject::from_bytes(&obj.to_bytes()).unwrap();
    assert_eq!(again, obj);
    match again.statement().unwrap() {
        AttestationStatement::Packed { alg, x5c, .. } => {
            assert_eq!(alg, CoseAlgorithm::Es256);
            assert_eq!(x5c.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // A different client data hash or a flipped authData bit fails.
    let mut wrong = cdh();
    wrong[0] ^= 1;
    assert!(matches!(obj.verify(&wrong), Err(Ctap2Error::SignatureInvalid(_))));
    let mut tampered = obj.clone();
    tampered.auth_data[32] ^= 0x04;
    assert!(matches!(tampered.verify(&cdh()), Err(Ctap2Error::SignatureInvalid(_))));
    assert!(matches!(leaf_public_key(&h(CERT)[..100]), Err(Ctap2Error::Certificate(_))));
}

#[test]
fn self_attestation_and_assertion_from_the_builder_verify() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(99);
    let sk = p256::ecdsa::SigningKey::random(&mut rng);
    let public = CoseKey::es256(p256::PublicKey::from(sk.verifying_key()));
    let ad = AuthenticatorData {
        attested_credential: Some(AttestedCredentialData {
            aaguid: [0; 16],
            credential_id: vec![0x42; 32],
            public_key: public.clone(),
        }),
        ..AuthenticatorData::new("example.com", AuthDataFlags::UP | AuthDataFlags::UV, 0)
    };
    let ad_bytes = ad.to_bytes().unwrap();
    let cdh = [0x77u8; 32];
    let sign = |msg: &[u8]| -> Vec<u8> {
        let s: p256::ecdsa::Signature = sk.sign(msg);
        s.to_der().as_bytes().to_vec()
    };
    let stmt = AttestationStatement::Packed {
        alg: CoseAlgorithm::Es256,
        sig: sign(&[ad_bytes.as_slice(), &cdh].concat()),
        x5c: vec![],
    };
    let obj = AttestationObject {
        fmt: "packed".into(),
        auth_data: ad_bytes.clone(),
        att_stmt: stmt.to_cbor(),
    };
    assert_eq!(obj.verify(&cdh), Ok(AttestationType::SelfAttestation));
    let rs = AttestationStatement::Packed { alg: CoseAlgorithm::Rs256, sig: vec![1], x5c: vec![] };
    assert!(rs.verify(&ad_bytes, &cdh).is_err());
    let none =
        AttestationObject { fmt: "none".into(), auth_data: ad_bytes, att_stmt: Value::Map(vec![]) };
    assert_eq!(none.verify(&cdh), Ok(AttestationType::None));

    let ga_ad = AuthenticatorData::new("example.com", AuthDataFlags::UP, 1).to_bytes().unwrap();
    let resp = GetAssertionResponse {
        credential: None,
        signature: sign(&[ga_ad.as_slice(), &cdh].concat()),
        auth_data: ga_ad,
        user: None,
        number_of_credentials: None,
        user_selected: None,
        large_blob_key: None,
        unsigned_extension_outputs: None,
    };
    assert!(verify_assertion(&public, &resp, &cdh).is_ok());
    assert!(verify_assertion(&public, &resp, &[0u8; 32]).is_err());
}

#[test]
fn auth_data_rejects_each_inconsistency() {
    let good = h(AUTH_DATA);
    for n in 0..good.len() {
        assert!(
            matches!(AuthenticatorData::parse(&good[..n]), Err(Ctap2Error::AuthData { .. })),
            "prefix of {n} bytes"
        );
    }
    let what = |b: &[u8]| match AuthenticatorData::parse(b) {
        Err(Ctap2Error::AuthData { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    assert_eq!(what(&good[..36]), "signCount");
    assert_eq!(what(&good[..40]), "aaguid");
    assert_eq!(what(&good[..54]), "credentialIdLength");
    assert_eq!(what(&good[..60]), "credentialId");
    assert_eq!(what(&good[..55 + 64]), "credentialPublicKey");
    // Trailing byte without ED; ED without extensions; ED with a non-map.
    assert_eq!(what(&[good.as_slice(), &[0]].concat()), "authData");
    let mut ed = good.clone();
    ed[32] |= 0x80;
    assert_eq!(what(&ed), "extensions");
    assert_eq!(what(&[ed.as_slice(), &[0x01]].concat()), "extensions");
    assert_eq!(what(&[ed.as_slice(), &[0xa0, 0x00]].concat()), "extensions");
    // A credential-ID length pointing past the end.
    let mut long = good.clone();
    long[53] = 0xff;
    assert_eq!(what(&long), "credentialId");
}
