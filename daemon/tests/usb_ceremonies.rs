//! CTAP2 client against the virtual key over real loopback UDP: register/authenticate
//! (allow list and discoverable), PIN set/change/use/wrong PIN, credential management, reset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod usb_common;

use std::time::Duration;

use cablebridge_protocol::ctap2::client_pin::Permissions;
use cablebridge_protocol::ctap2::verify::verify_with_cose;
use cablebridge_protocol::ctap2::{
    AuthenticatorData, CoseAlgorithm, CredentialDescriptor, CredentialParameters,
    GetAssertionRequest, MakeCredentialRequest, RelyingParty, StatusCode, User,
};
use cablebridged::ctap::uv::{authenticate, register, UserVerification, Verification};
use cablebridged::ctap::{CtapError, DeviceProgress, TokenSource};
use rand::rngs::OsRng;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use usb_common::*;

const LIMIT: Duration = Duration::from_secs(20);

fn mc(rk: bool, user: &[u8]) -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: [7; 32],
        rp: RelyingParty { id: "example.com".into(), name: Some("Example".into()) },
        user: User { id: user.to_vec(), name: Some("alice".into()), display_name: None },
        pub_key_cred_params: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
        exclude_list: vec![],
        extensions: None,
        options: cablebridge_protocol::ctap2::CommandOptions { rk: Some(rk), ..Default::default() },
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    }
}

fn ga(allow: Vec<CredentialDescriptor>) -> GetAssertionRequest {
    GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: [9; 32],
        allow_list: allow,
        extensions: None,
        options: Default::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
    }
}

#[tokio::test]
async fn register_then_authenticate_with_allow_list_and_discoverable() {
    timeout(LIMIT, async {
        let key = key(150, None).await;
        let mut client = connect(&key).await;
        assert!(client.info().supports_version("FIDO_2_1"));
        let cancel = CancellationToken::new();
        let mut log = Vec::new();
        let (made, how) = register(
            &mut client,
            &mut OsRng,
            mc(false, b"u1"),
            UserVerification::Preferred,
            None,
            &mut call!(cancel, log, 5000),
        )
        .await
        .unwrap();
        assert_eq!(how, Verification::PresenceOnly);
        // The presence delay makes the key send KEEPALIVE(UPNEEDED), surfaced as progress.
        assert!(log.contains(&DeviceProgress::TouchNeeded), "{log:?}");
        let auth = AuthenticatorData::parse(&made.auth_data).unwrap();
        let cred = auth.attested_credential.clone().expect("attested credential");
        let cose = cred.public_key.clone();

        let (assertions, _) = authenticate(
            &mut client,
            &mut OsRng,
            ga(vec![CredentialDescriptor::public_key(cred.credential_id.clone())]),
            UserVerification::Discouraged,
            None,
            &mut call!(cancel, log, 5000),
        )
        .await
        .unwrap();
        assert_eq!(assertions.len(), 1);
        verify_with_cose(&cose, &assertions[0].auth_data, &[9; 32], &assertions[0].signature)
            .unwrap();

        // Two discoverable credentials: getAssertion without allow list collects both.
        for user in [b"d1".as_slice(), b"d2"] {
            register(
                &mut client,
                &mut OsRng,
                mc(true, user),
                UserVerification::Preferred,
                None,
                &mut call!(cancel, log, 5000),
            )
            .await
            .unwrap();
        }
        let (all, _) = authenticate(
            &mut client,
            &mut OsRng,
            ga(vec![]),
            UserVerification::Preferred,
            None,
            &mut call!(cancel, log, 5000),
        )
        .await
        .unwrap();
        let mut users: Vec<_> = all.iter().map(|a| a.user.clone().unwrap().id).collect();
        users.sort();
        assert_eq!(users, vec![b"d1".to_vec(), b"d2".to_vec()]);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn pin_set_change_use_and_wrong_pin_retries() {
    timeout(LIMIT, async {
        let key = key(0, None).await;
        let mut client = connect(&key).await;
        let cancel = CancellationToken::new();
        let mut log = Vec::new();
        assert!(!client.pin_is_set());
        client.set_pin(&mut OsRng, &pin("1234"), &mut call!(cancel, log, 5000)).await.unwrap();
        assert!(client.pin_is_set());
        let before = client.pin_retries(&mut call!(cancel, log, 5000)).await.unwrap();
        assert_eq!(before.retries, 8);

        // Without a PIN the ceremony fails early with the actionable error.
        let err = register(
            &mut client,
            &mut OsRng,
            mc(false, b"u"),
            UserVerification::Preferred,
            None,
            &mut call!(cancel, log, 5000),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, CtapError::PinRequired { .. }), "{err}");
        assert!(err.to_string().contains("--pin-stdin"));

        // Wrong PIN: typed status with the retries left.
        let err = client
            .get_token(
                &mut OsRng,
                Some(&pin("9999")),
                Permissions::GET_ASSERTION,
                Some("example.com"),
                &mut call!(cancel, log, 5000),
            )
            .await
            .unwrap_err();
        match &err {
            CtapError::Status { status: StatusCode::PinInvalid, retries: Some(7), .. } => {}
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("wrong PIN (7 retries left)"), "{err}");

        client
            .change_pin(&mut OsRng, &pin("1234"), &pin("56789"), &mut call!(cancel, log, 5000))
            .await
            .unwrap();
        let (made, how) = register(
            &mut client,
            &mut OsRng,
            mc(false, b"u"),
            UserVerification::Required,
            Some(&pin("56789")),
            &mut call!(cancel, log, 5000),
        )
        .await
        .unwrap();
        assert_eq!(how, Verification::Token(TokenSource::PinWithPermissions));
        let auth = AuthenticatorData::parse(&made.auth_data).unwrap();
        assert!(auth.flags.contains(cablebridge_protocol::ctap2::AuthDataFlags::UV));
        // The old PIN no longer works; a right one resets the counter.
        let err = client
            .get_token(
                &mut OsRng,
                Some(&pin("1234")),
                Permissions::MAKE_CREDENTIAL,
                Some("x"),
                &mut call!(cancel, log, 5000),
            )
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::PinInvalid));
        assert_eq!(client.pin_retries(&mut call!(cancel, log, 5000)).await.unwrap().retries, 7);
        client
            .get_token(
                &mut OsRng,
                Some(&pin("56789")),
                Permissions::MAKE_CREDENTIAL,
                Some("x"),
                &mut call!(cancel, log, 5000),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(client.pin_retries(&mut call!(cancel, log, 5000)).await.unwrap().retries, 8);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn credential_management_lists_and_deletes_then_reset_wipes() {
    timeout(LIMIT, async {
        let key = key(0, Some("4321")).await;
        let mut client = connect(&key).await;
        let cancel = CancellationToken::new();
        let mut log = Vec::new();
        let p = pin("4321");
        for user in [b"a".as_slice(), b"b"] {
            register(
                &mut client,
                &mut OsRng,
                mc(true, user),
                UserVerification::Preferred,
                Some(&p),
                &mut call!(cancel, log, 5000),
            )
            .await
            .unwrap();
        }
        let token = client
            .get_token(
                &mut OsRng,
                Some(&p),
                Permissions::CREDENTIAL_MANAGEMENT,
                None,
                &mut call!(cancel, log, 5000),
            )
            .await
            .unwrap()
            .unwrap()
            .token;
        let meta = client.creds_metadata(&token, &mut call!(cancel, log, 5000)).await.unwrap();
        assert_eq!(meta.existing, 2);
        let listed =
            client.enumerate_credentials(&token, &mut call!(cancel, log, 5000)).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].rp.as_ref().unwrap().id, "example.com");
        assert_eq!(listed[0].credentials.len(), 2);
        let victim = listed[0].credentials[0].id.clone();
        client.delete_credential(&token, &victim, &mut call!(cancel, log, 5000)).await.unwrap();
        let listed =
            client.enumerate_credentials(&token, &mut call!(cancel, log, 5000)).await.unwrap();
        assert_eq!(listed[0].credentials.len(), 1);
        assert_ne!(listed[0].credentials[0].id, victim);

        client.reset(&mut call!(cancel, log, 5000)).await.unwrap();
        client.refresh_info(&mut call!(cancel, log, 5000)).await.unwrap();
        assert!(!client.pin_is_set(), "reset removes the PIN");
        let err = authenticate(
            &mut client,
            &mut OsRng,
            ga(vec![]),
            UserVerification::Preferred,
            None,
            &mut call!(cancel, log, 5000),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::NoCredentials), "{err}");
    })
    .await
    .unwrap();
}
