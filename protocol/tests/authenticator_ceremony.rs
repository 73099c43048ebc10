//! Registration and sign-in ceremonies against the software authenticator, checked with
//! independent p256 ECDSA verification and X.509 parsing.

// Helpers outside #[test] fns unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

mod authenticator_support;

use authenticator_support::*;
use cablebridge_protocol::authenticator::{
    AttestationMode, AuthenticatorError, Config, CredentialStore, Ctx, MemoryStore,
    PersistentState, PresenceKind, PresenceOutcome, PresencePolicy, Step, StoreError,
    CABLEBRIDGE_AAGUID, OID_FIDO_GEN_CE_AAGUID,
};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::StatusCode;
use p256::ecdsa::signature::Verifier;
use sha2::{Digest, Sha256};
use std::time::Duration;
use x509_cert::der::{Decode, Encode};

fn phone() -> Harness {
    Harness::new(Config::virtual_phone())
}

#[test]
fn get_info_reflects_configuration() {
    let mut key = Harness::new(Config::virtual_key());
    let info = key.ok(0x04, None);
    assert_eq!(info.get(3).unwrap().as_bytes().unwrap(), &CABLEBRIDGE_AAGUID);
    let opts = info.get(4).unwrap();
    assert_eq!(opts.get_text("clientPin"), Some(&Value::Bool(false)));
    assert_eq!(opts.get_text("credMgmt"), Some(&Value::Bool(true)));
    assert_eq!(opts.get_text("uv"), None);
    assert_eq!(info.get(6), Some(&Value::Array(vec![Value::int(2), Value::int(1)])));
    let mut ph = phone();
    let info = ph.ok(0x04, None);
    assert_eq!(info.get(4).unwrap().get_text("uv"), Some(&Value::Bool(true)));
    assert_eq!(info.get(6), None, "no PIN protocols without PIN capability");
    assert_eq!(
        ph.call(0x06, Some(Value::int_map([(2, Value::int(1))]))).status(),
        StatusCode::InvalidCommand
    );
}

#[test]
fn resident_credential_allow_list_and_discoverable() {
    let mut h = phone();
    let att = h.ok(0x01, Some(make_credential("example.com", b"user-1", true)));
    assert_eq!(att.get(1).unwrap().as_text(), Some("none"));
    let cred = parse_attested(att.get(2).unwrap().as_bytes().unwrap());
    assert_eq!(cred.flags, 0x45, "UP | UV | AT");
    assert_eq!(cred.rp_id_hash[..], Sha256::digest(b"example.com")[..]);

    let a = h.ok(0x02, Some(get_assertion("example.com", &[&cred.credential_id])));
    assert_eq!(credential_id(&a), cred.credential_id);
    assert_eq!(verify_assertion(&a, &cred.public_key, "example.com"), (0x05, 1));
    assert_eq!(a.get(4), None, "no user entity with an allowList");

    let a = h.ok(0x02, Some(get_assertion("example.com", &[])));
    assert_eq!(verify_assertion(&a, &cred.public_key, "example.com"), (0x05, 2));
    let user = a.get(4).unwrap();
    assert_eq!(user.get_text("id").unwrap().as_bytes(), Some(&b"user-1"[..]));
    assert_eq!(user.get_text("name").unwrap().as_text(), Some("alice@example.com"));
    assert_eq!(a.get(5), None, "numberOfCredentials only when several");

    assert_eq!(
        h.call(0x02, Some(get_assertion("other.com", &[]))).status(),
        StatusCode::NoCredentials
    );
    let wrong = h.call(0x02, Some(get_assertion("other.com", &[&cred.credential_id])));
    assert_eq!(wrong.status(), StatusCode::NoCredentials);
}

#[test]
fn non_resident_credential_round_trips_without_storage() {
    let mut h =
        Harness::new(Config { attestation: AttestationMode::None, ..Config::virtual_key() });
    let att = h.ok(0x01, Some(make_credential("example.com", b"u", false)));
    let cred = parse_attested(att.get(2).unwrap().as_bytes().unwrap());
    assert_eq!(cred.flags, 0x41, "UP | AT, no UV without PIN or built-in UV");
    assert!(h.auth.store().state().credentials.is_empty());
    let a = h.ok(0x02, Some(get_assertion("example.com", &[b"unknown", &cred.credential_id])));
    assert_eq!(verify_assertion(&a, &cred.public_key, "example.com"), (0x01, 1));
    let a = h.ok(0x02, Some(get_assertion("example.com", &[&cred.credential_id])));
    assert_eq!(verify_assertion(&a, &cred.public_key, "example.com").1, 2);
    // Not discoverable, and useless for another RP.
    assert_eq!(
        h.call(0x02, Some(get_assertion("example.com", &[]))).status(),
        StatusCode::NoCredentials
    );
    let other = h.call(0x02, Some(get_assertion("evil.com", &[&cred.credential_id])));
    assert_eq!(other.status(), StatusCode::NoCredentials);
    // up = false: no presence asked, UP flag clear.
    h.presence = PresencePolicy::AlwaysDeny;
    let req = with(
        get_assertion("example.com", &[&cred.credential_id]),
        5,
        Value::text_map([("up", Value::Bool(false))]),
    );
    let a = h.ok(0x02, Some(req));
    assert_eq!(verify_assertion(&a, &cred.public_key, "example.com").0 & 0x01, 0);
}

#[test]
fn exclude_list_and_algorithm_negotiation() {
    let mut h = phone();
    let att = h.ok(0x01, Some(make_credential("example.com", b"u", false)));
    let id = parse_attested(att.get(2).unwrap().as_bytes().unwrap()).credential_id;
    let req =
        with(make_credential("example.com", b"u2", true), 5, Value::Array(vec![descriptor(&id)]));
    assert_eq!(h.call(0x01, Some(req.clone())).status(), StatusCode::CredentialExcluded);
    assert!(h.auth.store().state().credentials.is_empty());
    // Excluded is only revealed after presence: a denial wins.
    h.presence = PresencePolicy::AlwaysDeny;
    assert_eq!(h.call(0x01, Some(req)).status(), StatusCode::OperationDenied);
    h.presence = PresencePolicy::AlwaysApprove;
    // Same exclude list for another RP does not match.
    let req =
        with(make_credential("other.com", b"u2", true), 5, Value::Array(vec![descriptor(&id)]));
    assert_eq!(h.call(0x01, Some(req)).status(), StatusCode::Ok);
    let eddsa_only = with(
        make_credential("example.com", b"u", true),
        4,
        Value::Array(vec![Value::text_map([
            ("alg", Value::int(-8)),
            ("type", Value::text("public-key")),
        ])]),
    );
    assert_eq!(h.call(0x01, Some(eddsa_only)).status(), StatusCode::UnsupportedAlgorithm);
}

#[test]
fn same_user_replaces_and_get_next_assertion_walks_all() {
    let mut h = phone();
    let mut keys = Vec::new();
    for user in [&b"a"[..], b"b", b"c", b"b"] {
        let att = h.ok(0x01, Some(make_credential("example.com", user, true)));
        keys.push(parse_attested(att.get(2).unwrap().as_bytes().unwrap()));
    }
    assert_eq!(h.auth.store().state().credentials.len(), 3, "user b replaced");
    let first = h.ok(0x02, Some(get_assertion("example.com", &[])));
    assert_eq!(first.get(5).and_then(Value::as_u64), Some(3));
    let mut seen = vec![credential_id(&first)];
    for _ in 0..2 {
        let next = h.ok(0x08, None);
        assert_eq!(next.get(5), None);
        seen.push(credential_id(&next));
        let k = keys.iter().find(|k| k.credential_id == credential_id(&next)).unwrap();
        verify_assertion(&next, &k.public_key, "example.com");
    }
    // Newest first: second "b", then c, then a.
    assert_eq!(
        seen,
        vec![
            keys[3].credential_id.clone(),
            keys[2].credential_id.clone(),
            keys[0].credential_id.clone()
        ]
    );
    assert_eq!(h.call(0x08, None).status(), StatusCode::NotAllowed);
    // Times out, and any other command discards the state.
    h.ok(0x02, Some(get_assertion("example.com", &[])));
    h.advance(Duration::from_secs(31));
    assert_eq!(h.call(0x08, None).status(), StatusCode::NotAllowed);
    h.ok(0x02, Some(get_assertion("example.com", &[])));
    h.ok(0x04, None);
    assert_eq!(h.call(0x08, None).status(), StatusCode::NotAllowed);
}

#[test]
fn packed_self_attestation_verifies_with_credential_key() {
    let mut h = Harness::new(Config {
        attestation: AttestationMode::PackedSelf,
        ..Config::virtual_phone()
    });
    let att = h.ok(0x01, Some(make_credential("example.com", b"u", true)));
    assert_eq!(att.get(1).unwrap().as_text(), Some("packed"));
    let auth_data = att.get(2).unwrap().as_bytes().unwrap();
    let stmt = att.get(3).unwrap();
    assert_eq!(stmt.get_text("alg").and_then(Value::as_i64), Some(-7));
    assert!(stmt.get_text("x5c").is_none());
    let sig = p256::ecdsa::Signature::from_der(stmt.get_text("sig").unwrap().as_bytes().unwrap())
        .unwrap();
    let cred = parse_attested(auth_data);
    cred.public_key.verify(&[auth_data, &CDH].concat(), &sig).unwrap();
}

#[test]
fn packed_ca_attestation_chain_verifies() {
    let mut h = Harness::new(Config::virtual_key());
    let ca_der = h.auth.attestation_ca_der().unwrap().to_vec();
    let att = h.ok(0x01, Some(make_credential("example.com", b"u", false)));
    let auth_data = att.get(2).unwrap().as_bytes().unwrap();
    assert_eq!(parse_attested(auth_data).aaguid, CABLEBRIDGE_AAGUID);
    let stmt = att.get(3).unwrap();
    let x5c = stmt.get_text("x5c").unwrap().as_array().unwrap();
    assert_eq!(x5c.len(), 1);
    let leaf = x509_cert::Certificate::from_der(x5c[0].as_bytes().unwrap()).unwrap();
    let ca = x509_cert::Certificate::from_der(&ca_der).unwrap();
    assert_eq!(leaf.tbs_certificate.issuer, ca.tbs_certificate.subject);
    // Leaf signed by the CA key.
    let ca_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(
        ca.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes(),
    )
    .unwrap();
    let tbs = leaf.tbs_certificate.to_der().unwrap();
    let leaf_sig = p256::ecdsa::Signature::from_der(leaf.signature.raw_bytes()).unwrap();
    ca_key.verify(&tbs, &leaf_sig).expect("leaf is signed by the CA");
    // attStmt signed by the leaf key.
    let leaf_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(
        leaf.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes(),
    )
    .unwrap();
    let sig = p256::ecdsa::Signature::from_der(stmt.get_text("sig").unwrap().as_bytes().unwrap())
        .unwrap();
    leaf_key.verify(&[auth_data, &CDH].concat(), &sig).expect("attStmt sig by leaf");
    let ext = leaf.tbs_certificate.extensions.unwrap();
    let aaguid = ext.iter().find(|e| e.extn_id == OID_FIDO_GEN_CE_AAGUID).unwrap();
    assert_eq!(&aaguid.extn_value.as_bytes()[2..], &CABLEBRIDGE_AAGUID);
}

#[test]
fn presence_denied_cancelled_timed_out_and_deferred() {
    let mut h = phone();
    h.presence = PresencePolicy::AlwaysDeny;
    assert_eq!(
        h.call(0x01, Some(make_credential("example.com", b"u", true))).status(),
        StatusCode::OperationDenied
    );
    assert!(h.auth.store().state().credentials.is_empty());
    h.presence = PresencePolicy::Deferred;
    for (outcome, status) in [
        (PresenceOutcome::Cancelled, StatusCode::KeepaliveCancel),
        (PresenceOutcome::TimedOut, StatusCode::UserActionTimeout),
        (PresenceOutcome::Denied, StatusCode::OperationDenied),
        (PresenceOutcome::Approved, StatusCode::Ok),
    ] {
        let Step::Pending(op) = h.step(0x01, Some(make_credential("example.com", b"u", true)))
        else {
            panic!("expected pending")
        };
        assert_eq!(op.request().kind, PresenceKind::MakeCredential);
        assert_eq!(op.request().rp_id.as_deref(), Some("example.com"));
        let mut ctx = Ctx { rng: &mut h.rng, now: h.now, presence: &mut h.presence };
        assert_eq!(h.auth.complete(op, outcome, &mut ctx).unwrap().status(), status);
    }
    assert_eq!(h.auth.store().state().credentials.len(), 1);
    // A new request supersedes a pending one.
    let Step::Pending(old) = h.step(0x0B, None) else { panic!() };
    let Step::Pending(_new) = h.step(0x0B, None) else { panic!() };
    let mut ctx = Ctx { rng: &mut h.rng, now: h.now, presence: &mut h.presence };
    assert_eq!(
        h.auth.complete(old, PresenceOutcome::Approved, &mut ctx),
        Err(AuthenticatorError::StalePending)
    );
}

/// A store whose commits can be made to fail, to check all-or-nothing behaviour.
struct FlakyStore {
    inner: MemoryStore,
    fail: bool,
}
impl CredentialStore for FlakyStore {
    fn state(&self) -> &PersistentState {
        self.inner.state()
    }
    fn commit(&mut self, next: PersistentState) -> Result<(), StoreError> {
        if self.fail {
            return Err(StoreError::CommitFailed("disk full".into()));
        }
        self.inner.commit(next)
    }
}

#[test]
fn failed_commit_changes_nothing_and_export_import_round_trips() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let now = Harness::new(Config::virtual_phone()).now; // the harness owns the one clock origin
    let store = FlakyStore { inner: MemoryStore::new(&mut rng), fail: false };
    let mut auth = cablebridge_protocol::authenticator::Authenticator::new(
        Config::virtual_phone(),
        store,
        &mut rng,
        now,
    );
    let mut presence = PresencePolicy::AlwaysApprove;
    let mut req = vec![0x01];
    make_credential("example.com", b"u", true).encode_into(&mut req);
    let mut ctx = Ctx { rng: &mut rng, now, presence: &mut presence };
    let Step::Done(r) = auth.handle(&req, &mut ctx) else { panic!() };
    assert_eq!(r.status(), StatusCode::Ok);
    let cred = parse_attested(Value::decode(r.body()).unwrap().get(2).unwrap().as_bytes().unwrap());
    let exported = auth.store().state().export();

    // Commit failure: no new credential, counters unchanged, CTAP1_ERR_OTHER.
    let before = auth.store().state().clone();
    let state = PersistentState::import(exported.expose()).unwrap();
    assert_eq!(state, before);
    let failing = FlakyStore { inner: MemoryStore::from_state(state.clone()), fail: true };
    let mut auth_fail = cablebridge_protocol::authenticator::Authenticator::new(
        Config::virtual_phone(),
        failing,
        &mut rng,
        now,
    );
    let mut ctx = Ctx { rng: &mut rng, now, presence: &mut presence };
    let Step::Done(r) = auth_fail.handle(&req, &mut ctx) else { panic!() };
    assert_eq!(r.status(), StatusCode::OtherError);
    let mut ga = vec![0x02];
    get_assertion("example.com", &[]).encode_into(&mut ga);
    let Step::Done(r) = auth_fail.handle(&ga, &mut ctx) else { panic!() };
    assert_eq!(r.status(), StatusCode::OtherError, "no signature without a persisted counter");
    assert_eq!(auth_fail.store().state(), &state);

    // The imported state signs for the credential made before export.
    let ok = FlakyStore { inner: MemoryStore::from_state(state), fail: false };
    let mut restored = cablebridge_protocol::authenticator::Authenticator::new(
        Config::virtual_phone(),
        ok,
        &mut rng,
        now,
    );
    let mut ctx = Ctx { rng: &mut rng, now, presence: &mut presence };
    let Step::Done(r) = restored.handle(&ga, &mut ctx) else { panic!() };
    let a = Value::decode(r.body()).unwrap();
    assert_eq!(verify_assertion(&a, &cred.public_key, "example.com").1, 1);
}

#[test]
fn backup_eligible_sets_be_and_bs_in_both_ceremonies_and_default_clears_them() {
    for (backup_eligible, expected) in [(false, 0x00), (true, 0x18)] {
        let mut h = Harness::new(Config {
            attestation: AttestationMode::None,
            backup_eligible,
            ..Config::virtual_phone()
        });
        let att = h.ok(0x01, Some(make_credential("example.com", b"u", false)));
        let cred = parse_attested(att.get(2).unwrap().as_bytes().unwrap());
        assert_eq!(cred.flags & 0x18, expected, "makeCredential BE|BS ({backup_eligible})");
        let a = h.ok(0x02, Some(get_assertion("example.com", &[&cred.credential_id])));
        let (flags, _) = verify_assertion(&a, &cred.public_key, "example.com");
        assert_eq!(flags & 0x18, expected, "getAssertion BE|BS ({backup_eligible})");
    }
}
