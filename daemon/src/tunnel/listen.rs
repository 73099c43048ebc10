//! The credential of our private `/cable/listen` path (see [`crate::tunnel::server`]): a phone
//! holds a random [`ListenSecret`] per linked desktop and hands that desktop only the
//! **contact id** derived from it ([`contact_id`]). The server lets a phone listen on
//! `/cable/listen/<base64url contact id>` only when the request carries the secret whose
//! derivation is that contact id ([`LISTEN_SECRET_HEADER`]), so a desktop (or anyone who saw a
//! contact id) cannot displace the phone. The same credential revokes the contact id
//! ([`REVOKE_HEADER`]): the server then answers desktops `410 Gone` for it.
//!
//! What it is not: part of any specification. Google's and Apple's phone sides are private.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

cablebridge_protocol::secret_type!(
    /// A phone's 32-byte credential for one contact id on our tunnel server.
    ListenSecret,
    32
);

/// Length of a contact id derived from a [`ListenSecret`].
pub const CONTACT_ID_LEN: usize = 16;

/// Request header carrying the listen secret (lowercase hex) on `/cable/listen`.
pub const LISTEN_SECRET_HEADER: &str = "X-Cablebridge-Listen-Secret";

/// Request header (`true`) asking the server to revoke the contact id on `/cable/listen`; the
/// answer is `410 Gone` once it is revoked.
pub const REVOKE_HEADER: &str = "X-Cablebridge-Revoke";

/// Domain separation for [`contact_id`].
const CONTACT_ID_LABEL: &[u8] = b"cablebridge listen contact id v1";

/// The contact id desktops use for the phone holding `secret`: the first
/// [`CONTACT_ID_LEN`] bytes of SHA-256(label ‖ secret). One-way: a contact id does not reveal
/// the secret.
pub fn contact_id(listen_secret: &ListenSecret) -> [u8; CONTACT_ID_LEN] {
    let mut h = Sha256::new();
    h.update(CONTACT_ID_LABEL);
    h.update(listen_secret.expose());
    let digest = h.finalize();
    let mut id = [0u8; CONTACT_ID_LEN];
    id.copy_from_slice(&digest[..CONTACT_ID_LEN]);
    id
}

/// Whether `secret_hex` (the header value) is the listen secret of `contact`. Runs the hash
/// on a fixed-size value; the comparison of two public ids needs no constant time.
pub fn secret_matches(contact: &[u8], secret_hex: &str) -> bool {
    let mut raw = [0u8; ListenSecret::LEN];
    if hex::decode_to_slice(secret_hex.trim(), &mut raw).is_err() {
        return false;
    }
    let secret = ListenSecret::new(raw);
    zeroize::Zeroize::zeroize(&mut raw);
    contact_id(&secret).as_slice() == contact
}

/// The request headers proving `secret` on `/cable/listen` (add [`REVOKE_HEADER`] to revoke).
pub fn listen_headers(listen_secret: &ListenSecret, revoke: bool) -> Vec<(String, String)> {
    let mut h = vec![(LISTEN_SECRET_HEADER.to_owned(), hex::encode(listen_secret.expose()))];
    if revoke {
        h.push((REVOKE_HEADER.to_owned(), "true".to_owned()));
    }
    h
}

/// A contact id as it appears in URLs.
pub fn contact_id_text(contact: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(contact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_the_secret_matches_its_contact_id() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = ListenSecret::random(&mut rng);
        let b = ListenSecret::random(&mut rng);
        let id = contact_id(&a);
        assert_ne!(id, contact_id(&b));
        assert!(secret_matches(&id, &hex::encode(a.expose())));
        assert!(!secret_matches(&id, &hex::encode(b.expose())));
        // The contact id itself (what desktops know) is not a credential.
        assert!(!secret_matches(&id, &hex::encode(id)));
        assert!(!secret_matches(&id, "zz"));
        assert!(!format!("{a:?}").contains(&hex::encode(a.expose())));
    }
}
