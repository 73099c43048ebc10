//! A software U2F authenticator (FIDO U2F Raw Message Formats v1.2) as a pure function of its
//! state: APDU bytes in, response APDU bytes out. What `virtual-key --u2f-only` answers
//! CTAPHID_MSG with.
//!
//! * Key handles are the CTAP2 authenticator's non-resident credential ids
//!   ([`MasterKey::wrap`]: the private key AES-GCM-wrapped, bound to the application
//!   parameter), so nothing is stored per credential and a handle presented for another
//!   application answers 0x6A80, as U2F requires.
//! * The attestation certificate is self-signed (P-256), generated at construction: one
//!   certificate, as `fido-u2f` wants (WebAuthn §8.6).
//! * User presence is the caller's `user_present` argument. Without it `U2F_REGISTER` and an
//!   enforcing `U2F_AUTHENTICATE` answer 0x6985 (conditions not satisfied), and the host polls
//!   — the caller decides when the "touch" happens and whether it was consumed
//!   ([`U2fReply::presence_used`]), like a real key's button latch.
//!
//! Not here: CTAPHID framing, timers, persistence of the counter (the caller reads
//! [`U2fAuthenticator::counter`] after each reply).

use rand_core::CryptoRngCore;

use super::apdu::{CommandApdu, ResponseApdu, StatusWord};
use super::messages::{
    authenticate_signed_data, register_signed_data, AuthenticateRequest, AuthenticateResponse,
    Control, Instruction, RegisterRequest, RegisterResponse,
};
use super::{P256_POINT_LEN, U2F_V2};
use crate::authenticator::{self_signed_certificate, CredentialKey, MasterKey};

const ATTESTATION_SUBJECT: &str =
    "CN=cablebridge virtual U2F key,OU=Authenticator Attestation,O=cablebridge,C=US";

/// One answer of the U2F authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct U2fReply {
    /// The response APDU (`data ‖ SW1 SW2`).
    pub apdu: Vec<u8>,
    /// Whether the request consumed the user's touch (a real key clears its latch then).
    pub presence_used: bool,
    /// Whether the request needed a touch it did not have (0x6985 from register/enforce).
    pub presence_wanted: bool,
}

impl U2fReply {
    fn status(status: StatusWord) -> Self {
        U2fReply {
            apdu: ResponseApdu::encode(&[], status),
            presence_used: false,
            presence_wanted: false,
        }
    }
    fn wants_touch() -> Self {
        U2fReply { presence_wanted: true, ..Self::status(StatusWord::ConditionsNotSatisfied) }
    }
    fn ok(data: &[u8], presence_used: bool) -> Self {
        U2fReply {
            apdu: ResponseApdu::encode(data, StatusWord::NoError),
            presence_used,
            presence_wanted: false,
        }
    }
}

/// The software U2F authenticator.
pub struct U2fAuthenticator {
    master_key: MasterKey,
    counter: u32,
    attestation_key: CredentialKey,
    attestation_cert: Vec<u8>,
}

impl core::fmt::Debug for U2fAuthenticator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("U2fAuthenticator").field("counter", &self.counter).finish_non_exhaustive()
    }
}

impl U2fAuthenticator {
    /// An authenticator wrapping key handles with `master_key`, counting from `counter`, with a
    /// fresh self-signed attestation certificate.
    pub fn new(
        master_key: MasterKey,
        counter: u32,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, x509_cert::builder::Error> {
        let attestation_key = CredentialKey::generate(rng);
        let attestation_cert = self_signed_certificate(ATTESTATION_SUBJECT, &attestation_key, rng)?;
        Ok(U2fAuthenticator { master_key, counter, attestation_key, attestation_cert })
    }

    /// The signature counter (persist it after every reply that used presence).
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The attestation certificate (DER).
    pub fn attestation_cert_der(&self) -> &[u8] {
        &self.attestation_cert
    }

    /// Answers one command APDU. Never panics on any input.
    pub fn handle(
        &mut self,
        apdu: &[u8],
        user_present: bool,
        rng: &mut impl CryptoRngCore,
    ) -> U2fReply {
        let Ok(command) = CommandApdu::parse(apdu) else {
            return U2fReply::status(StatusWord::WrongLength);
        };
        if command.cla != 0 {
            return U2fReply::status(StatusWord::ClaNotSupported);
        }
        match Instruction::from_u8(command.ins) {
            Instruction::Version if command.data.is_empty() => {
                U2fReply::ok(U2F_V2.as_bytes(), false)
            }
            Instruction::Version => U2fReply::status(StatusWord::WrongLength),
            Instruction::Register => self.register(&command, user_present, rng),
            Instruction::Authenticate => self.authenticate(&command, user_present),
            Instruction::Other(_) => U2fReply::status(StatusWord::InsNotSupported),
        }
    }

    fn register(
        &mut self,
        command: &CommandApdu,
        user_present: bool,
        rng: &mut impl CryptoRngCore,
    ) -> U2fReply {
        let Ok(request) = RegisterRequest::parse(&command.data) else {
            return U2fReply::status(StatusWord::WrongLength);
        };
        if !user_present {
            return U2fReply::wants_touch();
        }
        let key = CredentialKey::generate(rng);
        let key_handle = self.master_key.wrap(&key, &request.application, rng);
        let point = key.signing_key().map(|k| k.verifying_key().to_encoded_point(false));
        let Some(public_key) =
            point.as_ref().and_then(|p| <&[u8; P256_POINT_LEN]>::try_from(p.as_bytes()).ok())
        else {
            return U2fReply::status(StatusWord::Other(0x6f00));
        };
        let signed =
            register_signed_data(&request.application, &request.challenge, &key_handle, public_key);
        let Some(signature) = self.attestation_key.sign_der(&signed) else {
            return U2fReply::status(StatusWord::Other(0x6f00));
        };
        let response = RegisterResponse {
            public_key,
            key_handle: &key_handle,
            certificate: &self.attestation_cert,
            signature: &signature,
        };
        match response.encode() {
            Ok(data) => U2fReply::ok(&data, true),
            Err(_) => U2fReply::status(StatusWord::Other(0x6f00)),
        }
    }

    fn authenticate(&mut self, command: &CommandApdu, user_present: bool) -> U2fReply {
        let request = match AuthenticateRequest::parse(command) {
            Ok(r) => r,
            Err(_) if Control::from_u8(command.p1).is_none() => {
                return U2fReply::status(StatusWord::WrongParameters)
            }
            Err(_) => return U2fReply::status(StatusWord::WrongLength),
        };
        let Some(key) = self.master_key.unwrap(&request.key_handle, &request.application) else {
            return U2fReply::status(StatusWord::WrongData);
        };
        let up = match request.control {
            // "Yes, this handle is mine": the one success that is reported as 6985.
            Control::CheckOnly => return U2fReply::status(StatusWord::ConditionsNotSatisfied),
            Control::EnforceUserPresence if !user_present => return U2fReply::wants_touch(),
            Control::EnforceUserPresence => 1,
            Control::DontEnforceUserPresence => u8::from(user_present),
        };
        self.counter = self.counter.wrapping_add(1);
        let signed =
            authenticate_signed_data(&request.application, up, self.counter, &request.challenge);
        let Some(signature) = key.sign_der(&signed) else {
            return U2fReply::status(StatusWord::Other(0x6f00));
        };
        let response = AuthenticateResponse {
            user_presence: up,
            counter: self.counter,
            signature: &signature,
        };
        U2fReply::ok(&response.encode(), up == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap1::convert::{get_assertion_response, make_credential_response};
    use crate::ctap2::{verify, AttestationObject, AuthenticatorData};
    use rand::SeedableRng;

    fn send(
        key: &mut U2fAuthenticator,
        apdu: &CommandApdu,
        up: bool,
        rng: &mut rand::rngs::StdRng,
    ) -> (Vec<u8>, StatusWord) {
        let reply = key.handle(&apdu.encode().unwrap(), up, rng);
        let r = ResponseApdu::parse(&reply.apdu).unwrap();
        (r.data.to_vec(), r.status)
    }

    #[test]
    fn register_then_authenticate_and_every_refusal() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut key = U2fAuthenticator::new(MasterKey::random(&mut rng), 0, &mut rng).unwrap();
        let app = crate::authenticator::rp_id_hash("example.com");
        let reg = RegisterRequest { challenge: [7; 32], application: app }.to_apdu();
        // No touch yet: conditions not satisfied, the host polls.
        assert_eq!(send(&mut key, &reg, false, &mut rng).1, StatusWord::ConditionsNotSatisfied);
        let (data, sw) = send(&mut key, &reg, true, &mut rng);
        assert_eq!(sw, StatusWord::NoError);
        let parsed = RegisterResponse::parse(&data).unwrap();
        assert_eq!(parsed.certificate, key.attestation_cert_der());
        let mc = make_credential_response(&app, &parsed).unwrap();
        assert_eq!(mc.fmt, "fido-u2f");
        let object = AttestationObject::from(mc);
        let auth = object.auth_data().unwrap();
        let cred = auth.attested_credential.unwrap();
        assert_eq!(cred.credential_id, parsed.key_handle);

        let auth_req = |control, kh: &[u8], application| {
            AuthenticateRequest {
                control,
                challenge: [9; 32],
                application,
                key_handle: kh.to_vec(),
            }
            .to_apdu()
            .unwrap()
        };
        let kh = parsed.key_handle.to_vec();
        let check = auth_req(Control::CheckOnly, &kh, app);
        assert_eq!(send(&mut key, &check, true, &mut rng).1, StatusWord::ConditionsNotSatisfied);
        let other_app =
            auth_req(Control::CheckOnly, &kh, crate::authenticator::rp_id_hash("evil.example"));
        assert_eq!(send(&mut key, &other_app, true, &mut rng).1, StatusWord::WrongData);
        let mut tampered = kh.clone();
        tampered[5] ^= 1;
        let foreign = auth_req(Control::EnforceUserPresence, &tampered, app);
        assert_eq!(send(&mut key, &foreign, true, &mut rng).1, StatusWord::WrongData);
        let enforce = auth_req(Control::EnforceUserPresence, &kh, app);
        assert_eq!(send(&mut key, &enforce, false, &mut rng).1, StatusWord::ConditionsNotSatisfied);
        let (data, sw) = send(&mut key, &enforce, true, &mut rng);
        assert_eq!(sw, StatusWord::NoError);
        let resp = AuthenticateResponse::parse(&data).unwrap();
        assert_eq!((resp.user_presence, resp.counter), (1, 1));
        let ga = get_assertion_response(&app, &kh, &resp);
        assert_eq!(AuthenticatorData::parse(&ga.auth_data).unwrap().sign_count, 1);
        verify::verify_with_cose(&cred.public_key, &ga.auth_data, &[9; 32], &ga.signature).unwrap();
        let dont = auth_req(Control::DontEnforceUserPresence, &kh, app);
        let (data, _) = send(&mut key, &dont, false, &mut rng);
        assert_eq!(AuthenticateResponse::parse(&data).unwrap().user_presence, 0);
        assert_eq!(key.counter(), 2);
    }

    #[test]
    fn version_and_garbage() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut key = U2fAuthenticator::new(MasterKey::random(&mut rng), 0, &mut rng).unwrap();
        let (data, sw) =
            send(&mut key, &crate::ctap1::messages::version_request(), false, &mut rng);
        assert_eq!((data.as_slice(), sw), (b"U2F_V2".as_slice(), StatusWord::NoError));
        let sw = |bytes: &[u8], key: &mut U2fAuthenticator, rng: &mut rand::rngs::StdRng| {
            ResponseApdu::parse(&key.handle(bytes, true, rng).apdu).unwrap().status
        };
        assert_eq!(sw(&[0, 1], &mut key, &mut rng), StatusWord::WrongLength);
        assert_eq!(sw(&[0x80, 3, 0, 0], &mut key, &mut rng), StatusWord::ClaNotSupported);
        assert_eq!(sw(&[0, 0x40, 0, 0], &mut key, &mut rng), StatusWord::InsNotSupported);
        assert_eq!(
            sw(&[0, 1, 0, 0, 0, 0, 3, 1, 2, 3], &mut key, &mut rng),
            StatusWord::WrongLength
        );
        assert_eq!(
            sw(&[0, 2, 0x55, 0, 0, 0, 1, 1], &mut key, &mut rng),
            StatusWord::WrongParameters
        );
        for len in 0..80 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = key.handle(&junk, true, &mut rng);
        }
    }
}
