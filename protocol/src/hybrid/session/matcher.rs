//! Matching adverts to pending sessions (§5.2): every advert is trial-opened against every
//! pending session's [`DesktopPairing`] *before* anything else is done with it — the tag is the only
//! thing that says an advert is ours, and foreign adverts (other desktops' phones, other BLE
//! traffic on 0xFFF9) are the normal case.
//!
//! The hot path is [`DesktopPairing::offer_advert`]: one AES block decrypt per key, the HMAC only
//! when the decrypted reserved byte is zero. With diagnostics on (injected adverts, low rate), an
//! advert no session accepts is re-checked with [`DesktopPairing::offer_advert_diagnostic`] so
//! that "ours but with a non-zero reserved byte" is reported instead of silently ignored.
//!
//! A phone advertises repeatedly; after a session's first match its later adverts are reported
//! as [`MatchOutcome::Duplicate`] and must be ignored. The matched session's pairing is taken
//! out with [`AdvertMatcher::take`] to start its handshake.

use super::pairing::DesktopPairing;
use crate::hybrid::eid::{EidError, OpenedAdvert, TrialOpen};

/// Names a pending session (the caller's index: QR session, linked phone N, ...).
pub type SessionTag = usize;

/// What an advert turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOutcome {
    /// First valid advert for this session.
    Matched {
        /// The session.
        session: SessionTag,
        /// The decrypted advert.
        advert: OpenedAdvert,
    },
    /// A valid advert for a session that already matched.
    Duplicate {
        /// The session.
        session: SessionTag,
    },
    /// Sealed under a session's key but breaking a plaintext rule (worth a warning).
    Invalid {
        /// The session.
        session: SessionTag,
        /// What is wrong.
        error: EidError,
    },
    /// Not for any pending session.
    NotOurs,
}

struct Pending {
    tag: SessionTag,
    pairing: DesktopPairing,
    matched: bool,
}

/// Every pending session's pairing.
pub struct AdvertMatcher {
    pending: Vec<Pending>,
    diagnostics: bool,
}

impl std::fmt::Debug for AdvertMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvertMatcher")
            .field("sessions", &self.pending.len())
            .field("diagnostics", &self.diagnostics)
            .finish()
    }
}

impl AdvertMatcher {
    /// An empty matcher; `diagnostics` enables the slow re-check of unmatched adverts.
    pub fn new(diagnostics: bool) -> Self {
        AdvertMatcher { pending: Vec::new(), diagnostics }
    }

    /// Adds a pending session.
    pub fn add(&mut self, tag: SessionTag, pairing: DesktopPairing) {
        self.pending.push(Pending { tag, pairing, matched: false });
    }

    /// Removes a session (ceremony over, link forgotten).
    pub fn remove(&mut self, tag: SessionTag) {
        self.pending.retain(|p| p.tag != tag);
    }

    /// Removes a session and hands back its pairing (after its advert matched: start the
    /// handshake with it).
    pub fn take(&mut self, tag: SessionTag) -> Option<DesktopPairing> {
        let i = self.pending.iter().position(|p| p.tag == tag)?;
        Some(self.pending.remove(i).pairing)
    }

    /// Number of pending sessions.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no session is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Classifies one advert's service data.
    pub fn offer(&mut self, service_data: &[u8]) -> MatchOutcome {
        for p in &mut self.pending {
            match p.pairing.offer_advert(service_data) {
                TrialOpen::NotOurs => continue,
                TrialOpen::Invalid(error) => {
                    return MatchOutcome::Invalid { session: p.tag, error }
                }
                TrialOpen::Match(_) if p.matched => {
                    return MatchOutcome::Duplicate { session: p.tag }
                }
                TrialOpen::Match(advert) => {
                    p.matched = true;
                    return MatchOutcome::Matched { session: p.tag, advert };
                }
            }
        }
        if self.diagnostics {
            for p in &self.pending {
                if let TrialOpen::Invalid(error) = p.pairing.offer_advert_diagnostic(service_data) {
                    return MatchOutcome::Invalid { session: p.tag, error };
                }
            }
        }
        MatchOutcome::NotOurs
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::hybrid::eid::{EidKey, EidPlaintext};
    use crate::hybrid::keys::{LinkSecret, QrSecret};
    use crate::hybrid::noise::IdentityKeyPair;
    use crate::hybrid::tunnel::RoutingId;
    use p256::SecretKey;

    fn key(b: u8) -> EidKey {
        EidKey::from_qr_secret(&QrSecret::new([b; 16]))
    }

    fn identity() -> IdentityKeyPair {
        IdentityKeyPair::new(SecretKey::from_slice(&[7; 32]).unwrap())
    }

    fn qr(b: u8) -> DesktopPairing {
        DesktopPairing::from_qr(&QrSecret::new([b; 16]), &identity())
    }

    #[test]
    fn matches_the_right_session_then_dedupes() {
        let mut m = AdvertMatcher::new(false);
        let link = LinkSecret::new([2; 32]);
        m.add(7, qr(1));
        m.add(9, DesktopPairing::from_link(&link, &[5; 16], &identity().public_key()));
        let linked_key = EidKey::from_link(&link, &[5; 16]);
        let advert = linked_key.seal(&EidPlaintext::new([3; 10], RoutingId([1, 2, 3]), 0));
        match m.offer(&advert) {
            MatchOutcome::Matched { session, advert } => {
                assert_eq!(session, 9);
                assert_eq!(advert.plaintext.routing_id(), RoutingId([1, 2, 3]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.offer(&advert), MatchOutcome::Duplicate { session: 9 });
        let foreign = key(3).seal(&EidPlaintext::new([3; 10], RoutingId([1, 2, 3]), 0));
        assert_eq!(m.offer(&foreign), MatchOutcome::NotOurs);
        assert_eq!(m.offer(&[0u8; 5]), MatchOutcome::NotOurs);
        assert!(m.take(9).is_some());
        assert!(m.take(9).is_none());
        assert_eq!(m.len(), 1);
        m.remove(7);
        assert!(m.is_empty());
    }

    #[test]
    fn suffixed_adverts_match_on_the_first_20_bytes() {
        use crate::hybrid::advert_suffix::{ble_suffix, AdvertSuffix};
        let mut m = AdvertMatcher::new(false);
        m.add(4, qr(1));
        let pt = EidPlaintext::new([9; 10], RoutingId([4, 5, 6]), 1);
        let mut advert = key(1).seal(&pt).to_vec();
        advert.extend_from_slice(&ble_suffix(0x0080));
        let MatchOutcome::Matched { session: 4, advert: opened } = m.offer(&advert) else {
            panic!("suffixed advert did not match")
        };
        assert_eq!(opened.plaintext, pt);
        let suffix = AdvertSuffix::parse(&opened.suffix).unwrap().unwrap();
        assert_eq!(suffix.psm, Some(0x0080));
        // A garbage suffix changes nothing about the match (it is not covered by the tag).
        let mut m = AdvertMatcher::new(true);
        m.add(4, qr(1));
        let mut garbage = key(1).seal(&pt).to_vec();
        garbage.extend_from_slice(&[0xff; 7]);
        let MatchOutcome::Matched { advert: opened, .. } = m.offer(&garbage) else { panic!() };
        assert!(AdvertSuffix::parse(&opened.suffix).is_err());
        // A foreign advert with a suffix is still foreign.
        let mut foreign = key(2).seal(&pt).to_vec();
        foreign.extend_from_slice(&ble_suffix(1));
        assert_eq!(m.offer(&foreign), MatchOutcome::NotOurs);
    }

    #[test]
    fn ours_but_invalid_is_reported() {
        let mut m = AdvertMatcher::new(false);
        m.add(1, qr(1));
        // Reserved domain id 5 in QR mode: the fast path already sees the tag verify.
        let bad_domain = key(1).seal(&EidPlaintext::new([0; 10], RoutingId([0; 3]), 5));
        assert!(matches!(m.offer(&bad_domain), MatchOutcome::Invalid { session: 1, .. }));
        // Non-zero reserved byte: only the diagnostic path tells it apart from foreign.
        let mut p = EidPlaintext::new([0; 10], RoutingId([0; 3]), 0);
        p.0[0] = 1;
        let bad_reserved = key(1).seal(&p);
        assert_eq!(m.offer(&bad_reserved), MatchOutcome::NotOurs);
        let mut diag = AdvertMatcher::new(true);
        diag.add(1, qr(1));
        assert!(matches!(
            diag.offer(&bad_reserved),
            MatchOutcome::Invalid { session: 1, error: EidError::ReservedByte(1) }
        ));
    }
}
