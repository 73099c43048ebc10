//! Shared platform-side helpers for the authenticator integration tests. The platform half of
//! the PIN protocols is written here from the spec text, independently of the authenticator.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
// The harness needs one arbitrary origin for its virtual clock; it then only advances it.
#![allow(clippy::disallowed_methods)]

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use cablebridge_protocol::authenticator::{
    Authenticator, Config, Ctx, MemoryStore, PresenceOutcome, PresencePolicy, Response, Step,
};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::StatusCode;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

pub const CDH: [u8; 32] = [0x11; 32];

pub struct Harness {
    pub auth: Authenticator<MemoryStore>,
    pub rng: rand::rngs::StdRng,
    pub now: Instant,
    pub presence: PresencePolicy,
}

impl Harness {
    pub fn new(config: Config) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let now = Instant::now();
        let store = MemoryStore::new(&mut rng);
        let auth = Authenticator::new(config, store, &mut rng, now);
        Harness { auth, rng, now, presence: PresencePolicy::AlwaysApprove }
    }

    pub fn step(&mut self, cmd: u8, body: Option<Value>) -> Step {
        let mut req = vec![cmd];
        if let Some(b) = body {
            b.encode_into(&mut req);
        }
        self.raw(&req)
    }

    pub fn raw(&mut self, req: &[u8]) -> Step {
        let mut ctx = Ctx { rng: &mut self.rng, now: self.now, presence: &mut self.presence };
        self.auth.handle(req, &mut ctx)
    }

    pub fn call(&mut self, cmd: u8, body: Option<Value>) -> Response {
        match self.step(cmd, body) {
            Step::Done(r) => r,
            Step::Pending(op) => {
                let mut ctx =
                    Ctx { rng: &mut self.rng, now: self.now, presence: &mut self.presence };
                self.auth.complete(op, PresenceOutcome::Approved, &mut ctx).unwrap()
            }
        }
    }

    pub fn ok(&mut self, cmd: u8, body: Option<Value>) -> Value {
        let r = self.call(cmd, body);
        assert_eq!(r.status(), StatusCode::Ok, "command {cmd:#04x}");
        if r.body().is_empty() {
            Value::Null
        } else {
            Value::decode(r.body()).unwrap()
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

pub fn make_credential(rp: &str, user_id: &[u8], rk: bool) -> Value {
    Value::int_map([
        (1, Value::bytes(CDH.to_vec())),
        (2, Value::text_map([("id", Value::text(rp)), ("name", Value::text("Example"))])),
        (
            3,
            Value::text_map([
                ("id", Value::bytes(user_id.to_vec())),
                ("name", Value::text("alice@example.com")),
                ("displayName", Value::text("Alice")),
            ]),
        ),
        (
            4,
            Value::Array(vec![
                Value::text_map([("alg", Value::int(-8)), ("type", Value::text("public-key"))]),
                Value::text_map([("alg", Value::int(-7)), ("type", Value::text("public-key"))]),
            ]),
        ),
        (7, Value::text_map([("rk", Value::Bool(rk))])),
    ])
}

pub fn with(mut v: Value, key: i64, value: Value) -> Value {
    if let Value::Map(m) = &mut v {
        m.retain(|(k, _)| *k != Value::int(key));
        m.push((Value::int(key), value));
    }
    v
}

pub fn descriptor(id: &[u8]) -> Value {
    Value::text_map([("id", Value::bytes(id.to_vec())), ("type", Value::text("public-key"))])
}

pub fn get_assertion(rp: &str, allow: &[&[u8]]) -> Value {
    let mut m = vec![(1, Value::text(rp)), (2, Value::bytes(CDH.to_vec()))];
    if !allow.is_empty() {
        m.push((3, Value::Array(allow.iter().map(|id| descriptor(id)).collect())));
    }
    Value::int_map(m)
}

/// Parsed attested credential data.
pub struct Attested {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    pub aaguid: [u8; 16],
    pub credential_id: Vec<u8>,
    pub public_key: p256::ecdsa::VerifyingKey,
}

pub fn parse_attested(auth_data: &[u8]) -> Attested {
    let id_len = u16::from_be_bytes([auth_data[53], auth_data[54]]) as usize;
    let credential_id = auth_data[55..55 + id_len].to_vec();
    let cose = Value::decode(&auth_data[55 + id_len..]).unwrap();
    assert_eq!(cose.get(1).and_then(Value::as_i64), Some(2));
    assert_eq!(cose.get(3).and_then(Value::as_i64), Some(-7));
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(cose.get(-2).unwrap().as_bytes().unwrap());
    sec1.extend_from_slice(cose.get(-3).unwrap().as_bytes().unwrap());
    Attested {
        rp_id_hash: auth_data[..32].try_into().unwrap(),
        flags: auth_data[32],
        sign_count: u32::from_be_bytes(auth_data[33..37].try_into().unwrap()),
        aaguid: auth_data[37..53].try_into().unwrap(),
        credential_id,
        public_key: p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap(),
    }
}

/// Verifies an assertion response with an independent ECDSA check; returns (flags, counter).
pub fn verify_assertion(resp: &Value, key: &p256::ecdsa::VerifyingKey, rp: &str) -> (u8, u32) {
    let auth_data = resp.get(2).unwrap().as_bytes().unwrap();
    assert_eq!(&auth_data[..32], &Sha256::digest(rp.as_bytes())[..]);
    let sig = p256::ecdsa::Signature::from_der(resp.get(3).unwrap().as_bytes().unwrap()).unwrap();
    let signed = [auth_data, &CDH].concat();
    key.verify(&signed, &sig).expect("assertion signature verifies");
    (auth_data[32], u32::from_be_bytes(auth_data[33..37].try_into().unwrap()))
}

pub fn credential_id(resp: &Value) -> Vec<u8> {
    resp.get(1).unwrap().get_text("id").unwrap().as_bytes().unwrap().to_vec()
}

// ----- platform side of PIN/UV auth protocols (CTAP 2.1 §6.5.6/§6.5.7) -----

pub struct Platform {
    pub protocol: u64,
    pub key_agreement: Value,
    hmac_key: [u8; 32],
    aes_key: [u8; 32],
}

impl Platform {
    pub fn new(h: &mut Harness, protocol: u64) -> Self {
        let resp = h
            .ok(0x06, Some(Value::int_map([(1, Value::int(protocol as i64)), (2, Value::int(2))])));
        let cose = resp.get(1).unwrap();
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(cose.get(-2).unwrap().as_bytes().unwrap());
        sec1.extend_from_slice(cose.get(-3).unwrap().as_bytes().unwrap());
        let peer = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
        let ours = p256::SecretKey::random(&mut h.rng);
        let z = p256::ecdh::diffie_hellman(ours.to_nonzero_scalar(), peer.as_affine());
        let z = z.raw_secret_bytes();
        let (hmac_key, aes_key) = if protocol == 1 {
            let k: [u8; 32] = Sha256::digest(z).into();
            (k, k)
        } else {
            let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            hk.expand(b"CTAP2 HMAC key", &mut a).unwrap();
            hk.expand(b"CTAP2 AES key", &mut b).unwrap();
            (a, b)
        };
        let pk = ours.public_key().to_encoded_point(false);
        let key_agreement = Value::int_map([
            (1, Value::int(2)),
            (3, Value::int(-25)),
            (-1, Value::int(1)),
            (-2, Value::bytes(pk.x().unwrap().to_vec())),
            (-3, Value::bytes(pk.y().unwrap().to_vec())),
        ]);
        Platform { protocol, key_agreement, hmac_key, aes_key }
    }

    pub fn encrypt(&self, pt: &[u8]) -> Vec<u8> {
        let iv = if self.protocol == 1 { [0u8; 16] } else { [0x5a; 16] };
        let ct = cbc::Encryptor::<aes::Aes256>::new(&self.aes_key.into(), &iv.into())
            .encrypt_padded_vec_mut::<NoPadding>(pt);
        if self.protocol == 1 {
            ct
        } else {
            [iv.as_slice(), &ct].concat()
        }
    }

    pub fn decrypt(&self, ct: &[u8]) -> Vec<u8> {
        let (iv, body) = if self.protocol == 1 {
            ([0u8; 16], ct)
        } else {
            (ct[..16].try_into().unwrap(), &ct[16..])
        };
        cbc::Decryptor::<aes::Aes256>::new(&self.aes_key.into(), &iv.into())
            .decrypt_padded_vec_mut::<NoPadding>(body)
            .unwrap()
    }

    pub fn authenticate(&self, msg: &[u8]) -> Vec<u8> {
        auth_with(self.protocol, &self.hmac_key, msg)
    }

    pub fn padded_pin(pin: &str) -> Vec<u8> {
        let mut p = pin.as_bytes().to_vec();
        p.resize(64, 0);
        p
    }

    pub fn pin_hash_enc(&self, pin: &str) -> Vec<u8> {
        self.encrypt(&Sha256::digest(pin.as_bytes())[..16])
    }
}

pub fn auth_with(protocol: u64, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    let tag = mac.finalize().into_bytes();
    if protocol == 1 {
        tag[..16].to_vec()
    } else {
        tag.to_vec()
    }
}

pub fn set_pin(h: &mut Harness, protocol: u64, pin: &str) -> Response {
    let p = Platform::new(h, protocol);
    let enc = p.encrypt(&Platform::padded_pin(pin));
    let param = p.authenticate(&enc);
    h.call(
        0x06,
        Some(Value::int_map([
            (1, Value::int(protocol as i64)),
            (2, Value::int(3)),
            (3, p.key_agreement.clone()),
            (4, Value::bytes(param)),
            (5, Value::bytes(enc)),
        ])),
    )
}

/// getPinUvAuthTokenUsingPinWithPermissions (or getPinToken if `permissions` is None).
/// Returns the response and the decrypted token on success.
pub fn get_token(
    h: &mut Harness,
    protocol: u64,
    pin: &str,
    permissions: Option<u8>,
    rp_id: Option<&str>,
) -> (Response, Option<Vec<u8>>) {
    let p = Platform::new(h, protocol);
    let mut m = vec![
        (1, Value::int(protocol as i64)),
        (2, Value::int(if permissions.is_some() { 9 } else { 5 })),
        (3, p.key_agreement.clone()),
        (6, Value::bytes(p.pin_hash_enc(pin))),
    ];
    if let Some(perm) = permissions {
        m.push((9, Value::int(perm.into())));
    }
    if let Some(rp) = rp_id {
        m.push((10, Value::text(rp)));
    }
    let r = h.call(0x06, Some(Value::int_map(m)));
    let token = (r.status() == StatusCode::Ok).then(|| {
        let v = Value::decode(r.body()).unwrap();
        p.decrypt(v.get(2).unwrap().as_bytes().unwrap())
    });
    (r, token)
}
