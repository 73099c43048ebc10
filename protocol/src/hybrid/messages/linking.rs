//! Linking info and the update message that carries it (§9.1), with the handshake signature
//! that binds a link to the QR session it was created in.
//!
//! The phone signs `HMAC-SHA256(key = ECDH(phone identity, desktop QR key).x, msg = handshake
//! hash)`; the desktop verifies with its QR private key and the phone's public key (constant-time
//! compare). Not here: storing links, or deciding that linked sessions discard linking info
//! (`session`, §9.2).

use super::MessageError;
use crate::cbor::{field, CborError, Value};
use crate::hybrid::keys::LinkSecret;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// Padded length of Chrome's update plaintext (type byte included, before the Crypter's
/// trailer): the ciphertext is always 528 bytes whether or not linking info is present.
pub const PADDED_UPDATE_LEN: usize = 512;
/// Chrome's budget for `{0: zeros, 1: linking}`: 492 minus the encoded `{1: linking}`.
const ZERO_BUDGET: usize = 492;

/// Linking info (key 1 of an update, or legacy key 2 of the post-handshake message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkingInfo {
    /// Key 1: opaque contact ID for the tunnel service.
    pub contact_id: Vec<u8>,
    /// Key 2: link ("pairing") ID.
    pub link_id: [u8; 8],
    /// Key 3: link secret.
    pub link_secret: LinkSecret,
    /// Key 4: the phone's long-term identity key (65-byte uncompressed on the wire).
    pub phone_public_key: PublicKey,
    /// Key 5: human-readable name.
    pub name: String,
    /// Key 6: handshake signature.
    pub signature: [u8; 32],
    /// Key 999: Google Play Services marker (UI ordering only).
    pub gms_marker: Option<bool>,
}

fn linking_err(e: CborError) -> MessageError {
    MessageError::Linking(e)
}

/// `HMAC-SHA256(key = ECDH(secret, public).x, msg = handshake_hash)`.
fn signature_mac(
    secret: &SecretKey,
    public: &PublicKey,
    handshake_hash: &[u8; 32],
) -> Hmac<Sha256> {
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
    // HMAC accepts keys of any length; new_from_slice cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(shared.raw_secret_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    mac.update(handshake_hash);
    mac
}

impl LinkingInfo {
    /// Phone side: the signature over this session's handshake hash.
    pub fn sign(
        phone_identity: &SecretKey,
        desktop_qr_public: &PublicKey,
        handshake_hash: &[u8; 32],
    ) -> [u8; 32] {
        signature_mac(phone_identity, desktop_qr_public, handshake_hash)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Desktop side: checks key 6 with the QR private key over this session's handshake hash.
    pub fn verify(
        &self,
        desktop_qr_identity: &SecretKey,
        handshake_hash: &[u8; 32],
    ) -> Result<(), MessageError> {
        signature_mac(desktop_qr_identity, &self.phone_public_key, handshake_hash)
            .verify_slice(&self.signature)
            .map_err(|_| MessageError::BadLinkingSignature)
    }

    /// The CBOR map.
    pub fn to_value(&self) -> Value {
        let mut entries = vec![
            (1, Value::bytes(self.contact_id.clone())),
            (2, Value::bytes(self.link_id.to_vec())),
            (3, Value::bytes(self.link_secret.expose().to_vec())),
            (4, Value::bytes(self.phone_public_key.to_encoded_point(false).as_bytes().to_vec())),
            (5, Value::text(self.name.clone())),
            (6, Value::bytes(self.signature.to_vec())),
        ];
        if let Some(marker) = self.gms_marker {
            entries.push((999, Value::Bool(marker)));
        }
        Value::int_map(entries)
    }

    /// Canonical CBOR encoding of the map (it holds the link secret: wipe it after use). The
    /// intermediate tree is wiped here.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.to_value();
        let out = v.to_vec();
        wipe(&mut v);
        out
    }

    /// Parses the linking map; unknown keys are ignored.
    pub fn from_value(v: &Value) -> Result<Self, MessageError> {
        if v.as_map().is_none() {
            return Err(linking_err(CborError::Field {
                field: "linking info",
                problem: "not a map",
            }));
        }
        let contact_id = field::bytes(v.get(1), "contact ID (1)").map_err(linking_err)?.to_vec();
        let link_id = *field::fixed::<8>(v.get(2), "link ID (2)").map_err(linking_err)?;
        let link_secret =
            LinkSecret::new(*field::fixed::<32>(v.get(3), "link secret (3)").map_err(linking_err)?);
        let key = field::fixed::<65>(v.get(4), "phone public key (4)").map_err(linking_err)?;
        let bad_key = CborError::Field {
            field: "phone public key (4)",
            problem: "not an uncompressed P-256 point",
        };
        if key[0] != 0x04 {
            return Err(linking_err(bad_key));
        }
        let phone_public_key = PublicKey::from_sec1_bytes(key).map_err(|_| linking_err(bad_key))?;
        let name = field::text(v.get(5), "name (5)").map_err(linking_err)?.to_owned();
        let signature = *field::fixed::<32>(v.get(6), "signature (6)").map_err(linking_err)?;
        let gms_marker = match v.get(999) {
            None => None,
            Some(m) => Some(field::boolean(Some(m), "GMS marker (999)").map_err(linking_err)?),
        };
        Ok(LinkingInfo {
            contact_id,
            link_id,
            link_secret,
            phone_public_key,
            name,
            signature,
            gms_marker,
        })
    }

    /// Decodes the linking map from bytes; the decoded tree (which held the link secret) is
    /// wiped before it is freed.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let mut v = Value::decode(bytes).map_err(linking_err)?;
        let parsed = Self::from_value(&v);
        wipe(&mut v);
        parsed
    }
}

/// A decoded update message (payload of a type-2 frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Key 1, unverified. `None` for Chrome's padding-only update.
    pub linking: Option<LinkingInfo>,
}

impl Update {
    /// Parses the update CBOR map; key 0 (padding) and unknown keys are ignored.
    /// The decoded tree (which may hold a link secret) is wiped before it is freed.
    pub fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        let mut map = Value::decode(payload).map_err(MessageError::Update)?;
        let linking = if map.as_map().is_none() {
            Err(MessageError::Update(CborError::Field { field: "update", problem: "not a map" }))
        } else {
            map.get(1).map(LinkingInfo::from_value).transpose()
        };
        wipe(&mut map);
        Ok(Update { linking: linking? })
    }
}

/// Chrome's phone-side update plaintext, type byte included: `0x02 ‖ {0: zeros, [1: linking]}`
/// sized so the Crypter-padded plaintext is exactly [`PADDED_UPDATE_LEN`] bytes, hiding whether
/// linking info is present. Linking info too large for the budget is sent with an empty zero
/// string (the frame is then simply longer).
pub fn encode_padded_update(linking: Option<&LinkingInfo>) -> Vec<u8> {
    let link_value = linking.map(LinkingInfo::to_value);
    let used = link_value.as_ref().map_or(0, |l| Value::int_map([(1, l.clone())]).to_vec().len());
    let zeros = ZERO_BUDGET.saturating_sub(used);
    let mut entries = vec![(0, Value::bytes(vec![0u8; zeros]))];
    if let Some(l) = link_value {
        entries.push((1, l));
    }
    let mut out = Vec::with_capacity(PADDED_UPDATE_LEN);
    out.push(super::FrameType::Update as u8);
    Value::int_map(entries).encode_into(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hybrid::crypter::padded_len;
    use rand::SeedableRng;

    fn sample(rng: &mut rand::rngs::StdRng, name_len: usize) -> LinkingInfo {
        LinkingInfo {
            contact_id: vec![7; 40],
            link_id: [1; 8],
            link_secret: LinkSecret::new([2; 32]),
            phone_public_key: SecretKey::random(rng).public_key(),
            name: "n".repeat(name_len),
            signature: [3; 32],
            gms_marker: Some(true),
        }
    }

    #[test]
    fn encode_decode_and_padded_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for name_len in [0, 10, 100, 200] {
            let l = sample(&mut rng, name_len);
            assert_eq!(LinkingInfo::decode(&l.encode()).as_ref(), Ok(&l));
            let plain = encode_padded_update(Some(&l));
            assert_eq!(padded_len(plain.len()), PADDED_UPDATE_LEN, "name {name_len}");
            assert_eq!(Update::decode(&plain[1..]), Ok(Update { linking: Some(l) }));
        }
        let plain = encode_padded_update(None);
        assert_eq!(plain.len(), 498);
        assert_eq!(Update::decode(&plain[1..]), Ok(Update { linking: None }));
    }

    #[test]
    fn sign_verify_and_rejections() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let phone = SecretKey::random(&mut rng);
        let qr = SecretKey::random(&mut rng);
        let mut l = sample(&mut rng, 5);
        l.phone_public_key = phone.public_key();
        l.signature = LinkingInfo::sign(&phone, &qr.public_key(), &[5; 32]);
        assert_eq!(l.verify(&qr, &[5; 32]), Ok(()));
        assert_eq!(l.verify(&qr, &[6; 32]), Err(MessageError::BadLinkingSignature));
        let mut v = l.to_value();
        if let Value::Map(m) = &mut v {
            m.retain(|(k, _)| *k != Value::int(4));
            m.push((Value::int(4), Value::bytes(vec![4; 65])));
        }
        assert!(matches!(LinkingInfo::from_value(&v), Err(MessageError::Linking(_))));
        assert!(matches!(Update::decode(&[0x01]), Err(MessageError::Update(_))));
    }
}

/// Zeroizes every byte and text string of a decoded or built CBOR tree that carried a link
/// secret, so the heap blocks it frees hold no copy of it.
pub(crate) fn wipe(v: &mut Value) {
    use zeroize::Zeroize;
    match v {
        Value::Bytes(b) => b.zeroize(),
        Value::Text(t) => t.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            wipe(k);
            wipe(v);
        }),
        Value::Unsigned(_) | Value::Negative(_) | Value::Bool(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod wipe_tests {
    use super::*;

    #[test]
    fn wipe_clears_nested_strings() {
        let mut v = Value::int_map([
            (1, Value::bytes(vec![7u8; 32])),
            (2, Value::Array(vec![Value::text("secret")])),
        ]);
        wipe(&mut v);
        let Value::Map(entries) = &v else { panic!("still a map") };
        assert!(matches!(&entries[0].1, Value::Bytes(b) if b.is_empty()));
        assert!(
            matches!(&entries[1].1, Value::Array(a) if matches!(&a[0], Value::Text(t) if t.is_empty()))
        );
    }
}
