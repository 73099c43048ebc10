//! PIN/UV auth protocols 1 and 2 across the platform and authenticator halves, plus protocol-one
//! known answers from python-fido2's public test suite (test/test_ctap2.py, TestPinProtocolV1).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::client_pin::{ClientPinRequest, ClientPinResponse, Permissions};
use cablebridge_protocol::ctap2::pin::{authenticator as auth, client, KeyAgreementKey};
use cablebridge_protocol::ctap2::pin::{Pin, PinUvAuthProtocol, PinUvAuthToken};
use cablebridge_protocol::ctap2::{ClientPinSubcommand, CoseKey, Ctap2Error};
use p256::elliptic_curve::sec1::FromEncodedPoint;
use rand::SeedableRng;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn rng() -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(0x5eed)
}

/// The wire hop: both sides only ever see canonical CBOR.
fn over_wire_req(r: &ClientPinRequest) -> ClientPinRequest {
    ClientPinRequest::from_cbor(&Value::decode(&r.to_cbor().to_vec()).unwrap()).unwrap()
}
fn over_wire_resp(r: &ClientPinResponse) -> ClientPinResponse {
    ClientPinResponse::from_cbor(&Value::decode(&r.to_cbor().to_vec()).unwrap()).unwrap()
}

mod fido2_v1 {
    pub const EC_PRIV: &str = "7452e599fee739d8a653f6a507343d12d382249108a651402520b72f24fe7684";
    pub const EC_PUB_X: &str = "44D78D7989B97E62EA993496C9EF6E8FD58B8B00715F9A89153DDD9C4657E47F";
    pub const EC_PUB_Y: &str = "EC802EE7D22BD4E100F12E48537EB4E7E96ED3A47A0A3BD5F5EEAB65001664F9";
    pub const DEV_PUB_X: &str = "0501D5BC78DA9252560A26CB08FCC60CBE0B6D3B8E1D1FCEE514FAC0AF675168";
    pub const DEV_PUB_Y: &str = "D551B3ED46F665731F95B4532939C25D91DB7EB844BD96D4ABD4083785F8DF47";
    pub const SHARED: &str = "c42a039d548100dfba521e487debcbbb8b66bb7496f8b1862a7a395ed83e1a1c";
    pub const TOKEN_ENC: &str = "7A9F98E31B77BE90F9C64D12E9635040";
    pub const TOKEN: &str = "aff12c6dcfbf9df52f7a09211e8865cd";
    pub const PIN_HASH_ENC: &str = "afe8327ce416da8ee3d057589c2ce1a9";
    pub const SET_NEW_PIN_ENC: &str = "0222fc42c6dd76a274a7057858b9b29d98e8a722ec2dc6668476168c5320473cec9907b4cd76ce7943c96ba5683943211d84471e64d9c51e54763488cd66526a";
    pub const SET_PIN_AUTH: &str = "7b40c084ccc5794194189ab57836475f";
    pub const CHANGE_NEW_PIN_ENC: &str = "4280e14aac4fcbf02dd079985f0c0ffc9ea7d5f9c173fd1a4c843826f7590cb3c2d080c6923e2fe6d7a52c31ea1309d3fcca3dedae8a2ef14b6330cafc79339e";
    pub const CHANGE_PIN_AUTH: &str = "fb97e92f3724d7c85e001d7f93e6490a";
}

fn fido2_session() -> client::PinSession {
    use fido2_v1::*;
    let sk = p256::SecretKey::from_slice(&h(EC_PRIV)).unwrap();
    let platform = KeyAgreementKey::from_secret_key(sk);
    let point = p256::EncodedPoint::from_affine_coordinates(
        h(DEV_PUB_X).as_slice().into(),
        h(DEV_PUB_Y).as_slice().into(),
        false,
    );
    let dev = p256::PublicKey::from_encoded_point(&point).unwrap();
    let resp = ClientPinResponse {
        key_agreement: Some(CoseKey::key_agreement(dev)),
        ..Default::default()
    };
    client::PinSession::with_key(PinUvAuthProtocol::One, &platform, &resp).unwrap()
}

#[test]
fn v1_known_answers_from_python_fido2() {
    use fido2_v1::*;
    let mut rng = rng();
    let session = fido2_session();
    assert_eq!(session.shared_secret().hmac_key().expose().as_slice(), h(SHARED));

    // Token request carries our public key and the encrypted PIN hash.
    let pin = Pin::new("1234").unwrap();
    let req = session.get_pin_token(&mut rng, &pin).unwrap();
    assert_eq!(req.sub_command, ClientPinSubcommand::GetPinToken);
    assert_eq!(req.pin_hash_enc.as_deref(), Some(h(PIN_HASH_ENC).as_slice()));
    let key = req.key_agreement.as_ref().unwrap().to_cbor();
    assert_eq!(key.get(-2).unwrap().as_bytes().unwrap(), h(EC_PUB_X));
    assert_eq!(key.get(-3).unwrap().as_bytes().unwrap(), h(EC_PUB_Y));
    let token = session
        .decrypt_token(&ClientPinResponse {
            pin_uv_auth_token: Some(h(TOKEN_ENC)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(token.expose(), h(TOKEN));

    let set = fido2_session().set_pin(&mut rng, &pin).unwrap();
    assert_eq!(set.new_pin_enc.unwrap(), h(SET_NEW_PIN_ENC));
    assert_eq!(set.pin_uv_auth_param.unwrap(), h(SET_PIN_AUTH));

    let change = fido2_session().change_pin(&mut rng, &pin, &Pin::new("4321").unwrap()).unwrap();
    assert_eq!(change.new_pin_enc.unwrap(), h(CHANGE_NEW_PIN_ENC));
    assert_eq!(change.pin_hash_enc.unwrap(), h(PIN_HASH_ENC));
    assert_eq!(change.pin_uv_auth_param.unwrap(), h(CHANGE_PIN_AUTH));
}

/// A minimal authenticator PIN state, just enough to drive the helpers end to end.
struct ToyAuthenticator {
    key: KeyAgreementKey,
    pin_hash: Option<[u8; 16]>,
    token: PinUvAuthToken,
}

impl ToyAuthenticator {
    fn handle(
        &mut self,
        rng: &mut impl rand_core::CryptoRngCore,
        req: &ClientPinRequest,
    ) -> Result<ClientPinResponse, Ctap2Error> {
        match req.sub_command {
            ClientPinSubcommand::GetKeyAgreement => Ok(auth::key_agreement_response(&self.key)),
            ClientPinSubcommand::SetPin => {
                let shared = auth::shared_secret_for(&self.key, req)?;
                let pin = auth::open_set_pin(&shared, req, 4)?;
                self.pin_hash = Some(*pin.hash16().expose());
                Ok(ClientPinResponse::default())
            }
            ClientPinSubcommand::ChangePin => {
                let shared = auth::shared_secret_for(&self.key, req)?;
                let hash = auth::open_change_pin(&shared, req)?;
                if Some(*hash.expose()) != self.pin_hash {
                    return Err(Ctap2Error::Status(
                        cablebridge_protocol::ctap2::StatusCode::PinInvalid,
                    ));
                }
                let pin = auth::decrypt_new_pin(&shared, req.new_pin_enc.as_deref().unwrap(), 4)?;
                self.pin_hash = Some(*pin.hash16().expose());
                Ok(ClientPinResponse::default())
            }
            ClientPinSubcommand::GetPinToken
            | ClientPinSubcommand::GetPinUvAuthTokenUsingPinWithPermissions => {
                let shared = auth::shared_secret_for(&self.key, req)?;
                let hash = auth::decrypt_pin_hash(&shared, req.pin_hash_enc.as_deref().unwrap())?;
                if Some(*hash.expose()) != self.pin_hash {
                    return Err(Ctap2Error::Status(
                        cablebridge_protocol::ctap2::StatusCode::PinInvalid,
                    ));
                }
                auth::token_response(&shared, rng, &self.token)
            }
            _ => {
                Err(Ctap2Error::Status(cablebridge_protocol::ctap2::StatusCode::InvalidSubcommand))
            }
        }
    }
}

#[test]
fn set_change_and_use_pin_with_both_protocols() {
    for protocol in [PinUvAuthProtocol::One, PinUvAuthProtocol::Two] {
        let mut rng = rng();
        let mut a = ToyAuthenticator {
            key: KeyAgreementKey::generate(&mut rng),
            pin_hash: None,
            token: PinUvAuthToken::random(protocol, &mut rng),
        };
        let mut round = |req: ClientPinRequest, rng: &mut rand_chacha::ChaCha20Rng| {
            a.handle(rng, &over_wire_req(&req)).map(|r| over_wire_resp(&r))
        };
        let ka = round(client::key_agreement_request(protocol), &mut rng).unwrap();

        let s = client::PinSession::new(protocol, &mut rng, &ka).unwrap();
        round(s.set_pin(&mut rng, &Pin::new("1234").unwrap()).unwrap(), &mut rng).unwrap();

        let s = client::PinSession::new(protocol, &mut rng, &ka).unwrap();
        let req = s
            .change_pin(&mut rng, &Pin::new("1234").unwrap(), &Pin::new("π-4567").unwrap())
            .unwrap();
        round(req, &mut rng).unwrap();

        // The old PIN no longer works; the new one yields the authenticator's token.
        let s = client::PinSession::new(protocol, &mut rng, &ka).unwrap();
        let wrong = s
            .get_pin_uv_auth_token_using_pin(
                &mut rng,
                &Pin::new("1234").unwrap(),
                Permissions::GET_ASSERTION,
                Some("example.com"),
            )
            .unwrap();
        assert!(matches!(round(wrong, &mut rng), Err(Ctap2Error::Status(_))));
        let req = s
            .get_pin_uv_auth_token_using_pin(
                &mut rng,
                &Pin::new("π-4567").unwrap(),
                Permissions::GET_ASSERTION,
                Some("example.com"),
            )
            .unwrap();
        let token = s.decrypt_token(&round(req, &mut rng).unwrap()).unwrap();
        assert_eq!(token.expose(), a.token.expose());
        let cdh = [0x44u8; 32];
        let param = token.authenticate(&cdh);
        assert!(token.verify(&cdh, &param).is_ok());
        assert_eq!(param.len(), if protocol == PinUvAuthProtocol::One { 16 } else { 32 });
    }
}

#[test]
fn authenticator_rejects_tampering() {
    let mut rng = rng();
    for protocol in [PinUvAuthProtocol::One, PinUvAuthProtocol::Two] {
        let key = KeyAgreementKey::generate(&mut rng);
        let ka = auth::key_agreement_response(&key);
        let s = client::PinSession::new(protocol, &mut rng, &ka).unwrap();
        let mut req = s.set_pin(&mut rng, &Pin::new("1234").unwrap()).unwrap();
        let shared = auth::shared_secret_for(&key, &req).unwrap();
        if let Some(p) = req.pin_uv_auth_param.as_mut() {
            p[0] ^= 0x80;
        }
        assert_eq!(auth::open_set_pin(&shared, &req, 4), Err(Ctap2Error::PinUvAuthInvalid));
        req.pin_uv_auth_param = None;
        assert_eq!(
            auth::open_set_pin(&shared, &req, 4),
            Err(Ctap2Error::MissingField("pinUvAuthParam"))
        );
        req.pin_uv_auth_protocol = Some(3);
        assert!(matches!(
            auth::shared_secret_for(&key, &req),
            Err(Ctap2Error::InvalidField { field: "pinUvAuthProtocol", .. })
        ));
        assert!(auth::decrypt_pin_hash(&shared, &[0u8; 15]).is_err());
        assert!(auth::decrypt_new_pin(&shared, &[0u8; 48], 4).is_err());
    }
}

#[test]
fn platform_rejects_bad_token_responses() {
    let mut rng = rng();
    let key = KeyAgreementKey::generate(&mut rng);
    let s = client::PinSession::new(
        PinUvAuthProtocol::Two,
        &mut rng,
        &auth::key_agreement_response(&key),
    )
    .unwrap();
    assert_eq!(
        s.decrypt_token(&ClientPinResponse::default()),
        Err(Ctap2Error::MissingField("pinUvAuthToken"))
    );
    let short = ClientPinResponse { pin_uv_auth_token: Some(vec![0; 20]), ..Default::default() };
    assert!(matches!(s.decrypt_token(&short), Err(Ctap2Error::Decrypt(_))));
    // IV + 16 bytes decrypts to a 16-byte token, which protocol two refuses.
    let wrong_len =
        ClientPinResponse { pin_uv_auth_token: Some(vec![0; 32]), ..Default::default() };
    assert!(matches!(s.decrypt_token(&wrong_len), Err(Ctap2Error::InvalidField { .. })));
    assert!(client::PinSession::new(
        PinUvAuthProtocol::Two,
        &mut rng,
        &ClientPinResponse::default()
    )
    .is_err());
    assert!(s.get_pin_uv_auth_token_using_uv(Permissions::default(), None).is_err());
    let uv =
        s.get_pin_uv_auth_token_using_uv(Permissions::MAKE_CREDENTIAL, Some("a.example")).unwrap();
    assert_eq!(uv.permissions, Some(Permissions::MAKE_CREDENTIAL));
    assert!(uv.pin_hash_enc.is_none());
}
