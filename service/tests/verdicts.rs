//! Entra policy verdicts on ceremonies through the daemon: a hybrid register and authenticate
//! with a virtual phone reporting Microsoft Authenticator's AAGUID against a policy whose block
//! list holds it → `"policy":{"verdict":"reject",...}` on both results (the fields the CLI adds);
//! bad `policy`/`profile`/`mds`/`credential_aaguid` params are -32602 naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_service::client::ClientError;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{PhoneConfig, PhoneState, VirtualPhone};
use common::{hybrid_register, hybrid_rig, policy_fixture as fixture, wait_end, wait_qr};
use serde_json::{json, Value};

const AUTHENTICATOR_ANDROID: &str = "de1e552d-db1d-4423-a619-566b625cdc84";

fn failed_rules(policy: &Value) -> Vec<String> {
    policy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["rule"].as_str().unwrap().to_owned())
        .collect()
}

fn authenticator_phone(tunnel: &str, adverts: &std::path::Path) -> VirtualPhone {
    let mut c = PhoneConfig::new(tunnel.to_owned());
    c.sink = AdvertSinkSpec::Unix(adverts.to_owned());
    c.advert_interval = Duration::from_millis(20);
    c.desktop_timeout = Duration::from_secs(10);
    c.idle_timeout = Duration::from_secs(10);
    c.aaguid = AUTHENTICATOR_ANDROID.parse::<cablebridged::evidence::Aaguid>().unwrap().0;
    VirtualPhone::new(c, PhoneState::new(&mut rand::rngs::OsRng), None, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_authenticator_is_rejected_at_register_and_sign_in() {
    let (_server, tunnel, daemon, adverts) = hybrid_rig().await;
    let mut phone = authenticator_phone(&tunnel, &adverts);
    let mut c = daemon.client().await;
    let policy = fixture("legacy-block-authenticator.json");

    let mut params = hybrid_register(&tunnel, &adverts);
    params["policy"] = json!(policy);
    params["no_linking"] = json!(true);
    let id =
        c.call("ceremony.register", params.clone()).await.unwrap()["session"].as_u64().unwrap();
    let qr = QrPayload::from_url(&wait_qr(&mut c, id).await).unwrap();
    let (_, events) = tokio::join!(phone.run_qr(&qr), wait_end(&mut c, id));
    let reg = events.last().unwrap().clone();
    assert_eq!(reg["event"], "result", "{events:?}");
    assert_eq!(reg["aaguid"], AUTHENTICATOR_ANDROID);
    assert_eq!(reg["authenticator_name"], "Microsoft Authenticator (Android)");
    assert_eq!(reg["policy"]["verdict"], "reject", "{reg}");
    assert_eq!(reg["policy"]["profile"]["id"], "legacy");
    assert_eq!(failed_rules(&reg["policy"]), ["key_restrictions"]);
    assert!(reg["policy"]["reasons"][0].as_str().unwrap().contains("block list"));
    assert!(reg.get("attestation_chain").is_none(), "only with mds: {reg}");

    // Sign-in with the credential's AAGUID from its registration.
    params.as_object_mut().unwrap().remove("user_name");
    params["allow_credentials"] = json!([reg["credential_id"]]);
    params["credential_aaguid"] = json!(AUTHENTICATOR_ANDROID);
    let id =
        c.call("ceremony.authenticate", params.clone()).await.unwrap()["session"].as_u64().unwrap();
    let qr = QrPayload::from_url(&wait_qr(&mut c, id).await).unwrap();
    let (_, events) = tokio::join!(phone.run_qr(&qr), wait_end(&mut c, id));
    let auth = events.last().unwrap().clone();
    assert_eq!(auth["event"], "result", "{events:?}");
    assert_eq!(auth["policy"]["verdict"], "reject", "{auth}");
    assert_eq!(failed_rules(&auth["policy"]), ["key_restrictions"]);

    // Bad params name the field (before any session starts).
    let register = hybrid_register(&tunnel, &adverts);
    let with = |k: &str, v: Value| {
        let mut p = register.clone();
        p[k] = v;
        p
    };
    let mut profile_without_policy = register.clone();
    profile_without_policy["profile"] = json!("x");
    let mut unknown_profile = with("policy", json!(fixture("profiles.json")));
    unknown_profile["profile"] = json!("no such profile");
    for (method, p, want) in [
        ("ceremony.register", with("policy", json!(fixture("malformed-syntax.json"))), "policy"),
        ("ceremony.register", with("policy", json!("/nonexistent/p.json")), "policy"),
        ("ceremony.register", with("mds", json!("/nonexistent/mds.json")), "mds"),
        ("ceremony.register", with("mds", json!(fixture("profiles.json"))), "mds"),
        ("ceremony.register", profile_without_policy, "profile"),
        ("ceremony.register", unknown_profile, "profile"),
        (
            "ceremony.authenticate",
            with("credential_aaguid", json!("not-a-uuid")),
            "credential_aaguid",
        ),
    ] {
        match c.call(method, p.clone()).await {
            Err(ClientError::Rpc(e)) => {
                assert_eq!((e.code, e.data), (-32602, Some(json!({"field": want}))), "{p}")
            }
            other => panic!("{p}: {other:?}"),
        }
    }
    assert_eq!(c.call("status", json!({})).await.unwrap()["sessions"], json!([]));
}
