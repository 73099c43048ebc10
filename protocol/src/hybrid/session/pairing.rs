//! The pairing stage before the handshake (§5, §7): which secret a session is keyed by, the EID
//! advert that announces the phone, and the PSK both sides derive from that advert. Both roles,
//! sans IO; the secrets never leave these types.
//!
//! * Desktop: [`DesktopPairing::from_qr`] / [`DesktopPairing::from_link`] → feed adverts to
//!   [`DesktopPairing::offer_advert`] (or register the pairing in an [`AdvertMatcher`] when
//!   several sessions wait at once) → [`DesktopPairing::start_handshake`] with the matched advert
//!   → [`DesktopHandshake`] and message 1.
//! * Phone: [`PhonePairing::qr`] / [`PhonePairing::linked`] → broadcast
//!   [`PhonePairing::advert`] → [`PhonePairing::respond`] to message 1 → [`PhoneHandshaken`] and
//!   message 2.

use super::{DesktopHandshake, PhoneHandshaken, SessionError};
use crate::hybrid::eid::{EidKey, EidMode, EidPlaintext, OpenedAdvert, TrialOpen, ADVERT_LEN};
use crate::hybrid::keys::{LinkSecret, Psk, QrSecret};
use crate::hybrid::noise::{IdentityKeyPair, HANDSHAKE_MESSAGE_LEN};
use crate::hybrid::qr::QrPayload;
use crate::hybrid::tunnel::RoutingId;
use p256::{PublicKey, SecretKey};

/// The secret a session is keyed by.
#[derive(Clone)]
enum Keyed {
    Qr(QrSecret),
    Link(LinkSecret),
}

impl Keyed {
    fn psk(&self, advert: &OpenedAdvert) -> Psk {
        match self {
            Keyed::Qr(s) => advert.psk(s),
            Keyed::Link(s) => advert.psk(s),
        }
    }
}

/// Which Noise pattern the desktop will start.
#[derive(Clone)]
enum DesktopRole {
    /// KNpsk0 with the key pair whose public half the QR code shows.
    Qr(IdentityKeyPair),
    /// NKpsk0 against the phone's stored identity key.
    Linked(PublicKey),
}

/// The desktop side of one pending session: waits for the phone's advert.
#[derive(Clone)]
pub struct DesktopPairing {
    secret: Keyed,
    role: DesktopRole,
    key: EidKey,
    mode: EidMode,
}

impl core::fmt::Debug for DesktopPairing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DesktopPairing").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl DesktopPairing {
    /// A QR-initiated session: `identity` is the key whose public half is key 0 of the QR code
    /// carrying `secret` (both come from `QrPayload::generate`).
    pub fn from_qr(secret: &QrSecret, identity: &IdentityKeyPair) -> Self {
        DesktopPairing {
            secret: Keyed::Qr(secret.clone()),
            role: DesktopRole::Qr(identity.clone()),
            key: EidKey::from_qr_secret(secret),
            mode: EidMode::Qr,
        }
    }

    /// A state-assisted session with a linked phone: its link secret and identity key (from
    /// verified linking info) and the fresh client nonce sent in this connection's client
    /// payload.
    pub fn from_link(secret: &LinkSecret, client_nonce: &[u8; 16], phone: &PublicKey) -> Self {
        DesktopPairing {
            secret: Keyed::Link(secret.clone()),
            role: DesktopRole::Linked(*phone),
            key: EidKey::from_link(secret, client_nonce),
            mode: EidMode::Linked,
        }
    }

    /// Which advert rules apply (QR adverts carry a routing and domain id; linked ones need not).
    pub fn mode(&self) -> EidMode {
        self.mode
    }

    /// Trial-opens one advert's service data (§5.2): [`TrialOpen::NotOurs`] for the normal case
    /// of someone else's advert.
    pub fn offer_advert(&self, service_data: &[u8]) -> TrialOpen {
        self.key.trial_open(service_data, self.mode)
    }

    /// Like [`Self::offer_advert`] but verifies the tag even when the reserved byte is wrong, so
    /// "ours but malformed" is reported (tools, injected adverts).
    pub fn offer_advert_diagnostic(&self, service_data: &[u8]) -> TrialOpen {
        self.key.trial_open_diagnostic(service_data, self.mode)
    }

    /// Derives the PSK from the matched `advert` (its whole plaintext is the salt, pitfall
    /// §11.2 item 3) and starts the handshake: the phase and Noise message 1.
    pub fn start_handshake(
        self,
        advert: &OpenedAdvert,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> (DesktopHandshake, [u8; HANDSHAKE_MESSAGE_LEN]) {
        let psk = self.secret.psk(advert);
        match &self.role {
            DesktopRole::Qr(identity) => DesktopHandshake::start_qr(&psk, identity, rng),
            DesktopRole::Linked(phone) => DesktopHandshake::start_linked(&psk, phone, rng),
        }
    }
}

/// Which Noise pattern the phone will answer.
enum PhoneRole {
    /// KNpsk0: the desktop's QR identity public key.
    Qr(PublicKey),
    /// NKpsk0: the phone's own identity key.
    Linked(SecretKey),
}

/// The phone side of one session: advertises, then answers message 1.
pub struct PhonePairing {
    secret: Keyed,
    role: PhoneRole,
    plaintext: EidPlaintext,
    advert: [u8; ADVERT_LEN],
}

impl core::fmt::Debug for PhonePairing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PhonePairing").field("advert", &self.advert).finish_non_exhaustive()
    }
}

impl PhonePairing {
    /// A QR-initiated session after the tunnel server assigned `routing`: the EID carries a
    /// fresh nonce, the routing id and `domain_id` (§5.1), sealed under the QR's EID key.
    pub fn qr(
        qr: &QrPayload,
        routing: RoutingId,
        domain_id: u16,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Self {
        let mut nonce = [0u8; 10];
        rng.fill_bytes(&mut nonce);
        let plaintext = EidPlaintext::new(nonce, routing, domain_id);
        let advert = EidKey::from_qr_secret(&qr.secret).seal(&plaintext);
        PhonePairing {
            secret: Keyed::Qr(qr.secret.clone()),
            role: PhoneRole::Qr(qr.public_key),
            plaintext,
            advert,
        }
    }

    /// A state-assisted session for a desktop that sent `client_nonce` with a link this phone
    /// issued. The EID has byte 0 zero, bytes 1–13 random and bytes 14–15 a valid domain id:
    /// Chrome's desktop checks the domain even on linked adverts (pitfall §11.2 item 16).
    pub fn linked(
        secret: &LinkSecret,
        client_nonce: &[u8; 16],
        domain_id: u16,
        identity: &SecretKey,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Self {
        let mut block = [0u8; 16];
        rng.fill_bytes(&mut block[1..14]);
        block[14..16].copy_from_slice(&domain_id.to_le_bytes());
        let plaintext = EidPlaintext(block);
        let advert = EidKey::from_link(secret, client_nonce).seal(&plaintext);
        PhonePairing {
            secret: Keyed::Link(secret.clone()),
            role: PhoneRole::Linked(identity.clone()),
            plaintext,
            advert,
        }
    }

    /// The 20 bytes of service data to broadcast until message 1 arrives.
    pub fn advert(&self) -> &[u8; ADVERT_LEN] {
        &self.advert
    }

    /// Answers the desktop's message 1 with the PSK of our own advert: the phase and message 2.
    pub fn respond(
        self,
        msg1: &[u8],
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<(PhoneHandshaken, [u8; HANDSHAKE_MESSAGE_LEN]), SessionError> {
        let opened = OpenedAdvert { plaintext: self.plaintext, suffix: Vec::new() };
        let psk = self.secret.psk(&opened);
        match &self.role {
            PhoneRole::Qr(desktop) => PhoneHandshaken::respond_qr(&psk, desktop, msg1, rng),
            PhoneRole::Linked(identity) => {
                PhoneHandshaken::respond_linked(&psk, identity, msg1, rng)
            }
        }
    }
}
