//! Random requests never panic the authenticator, and whatever they do leaves it usable: the
//! store stays importable and a normal ceremony still works afterwards.

// Helpers outside #[test] fns unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

mod authenticator_support;

use authenticator_support::*;
use cablebridge_protocol::authenticator::{Config, CredentialStore, PersistentState, Step};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::StatusCode;
use proptest::prelude::*;

/// Structured-but-random CBOR maps hit the parsers deeper than raw bytes do.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::int),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        "[a-z.]{0,12}".prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((-3i64..12, inner.clone()), 0..6).prop_map(Value::int_map),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("id"),
                        Just("type"),
                        Just("alg"),
                        Just("rk"),
                        Just("up"),
                        Just("uv")
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(Value::text_map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cablebridge_protocol::proptest_cases!(96), ..ProptestConfig::default() })]

    #[test]
    fn random_requests_never_panic(
        requests in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..80),
                (prop_oneof![0x01u8..=0x0Du8, Just(0x40u8), Just(0x41u8)], arb_value()).prop_map(|(cmd, v)| {
                    let mut out = vec![cmd];
                    v.encode_into(&mut out);
                    out
                }),
            ],
            1..8,
        ),
        pin in any::<bool>(),
    ) {
        // With the simulated fingerprint sensor, so bio enrollment (0x09/0x40) is reachable too.
        let mut h = Harness::new(Config { bio: true, ..Config::virtual_key() });
        if pin {
            set_pin(&mut h, 2, "1234");
        }
        for req in &requests {
            match h.raw(req) {
                Step::Done(r) => prop_assert!(!r.as_bytes().is_empty()),
                Step::Pending(_) => {}
            }
        }
        let exported = h.auth.store().state().export();
        prop_assert_eq!(&PersistentState::import(exported.expose()).unwrap(), h.auth.store().state());
        // Still works: getInfo and (if no PIN got set) a full ceremony.
        prop_assert_eq!(h.call(0x04, None).status(), StatusCode::Ok);
        // (authenticatorConfig needs no token without a PIN: a random request may turn alwaysUv
        // on, and then no ceremony runs without a PIN, as it should.)
        let state = h.auth.store().state();
        if state.pin_hash.is_none() && !state.settings.always_uv {
            let att = h.ok(0x01, Some(make_credential("example.com", b"u", true)));
            let cred = parse_attested(att.get(2).unwrap().as_bytes().unwrap());
            let a = h.ok(0x02, Some(get_assertion("example.com", &[&cred.credential_id])));
            verify_assertion(&a, &cred.public_key, "example.com");
        }
    }
}
