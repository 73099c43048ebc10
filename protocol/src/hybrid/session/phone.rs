//! Phone (Noise responder) phases of a hybrid session (§1.1 phone checklist, §8, §9.1).

use super::{open_into, SessionError};
use crate::ctap2::{Command, StatusCode};
use crate::hybrid::crypter::Crypter;
use crate::hybrid::keys::Psk;
use crate::hybrid::messages::{
    encode_padded_update, Frame, FrameType, LinkingInfo, PostHandshake, Revision,
};
use crate::hybrid::noise::{respond_with_ephemeral, ResponderKeys, HANDSHAKE_MESSAGE_LEN};
use p256::{PublicKey, SecretKey};

/// What a received frame meant to the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhoneEvent {
    /// A CTAP request: command byte and CBOR parameters.
    CtapRequest {
        /// CTAP command (e.g. 0x01 makeCredential, 0x02 getAssertion); unknown bytes are
        /// [`Command::Other`].
        command: Command,
        /// CBOR parameters (may be empty, e.g. authenticatorSelection).
        params: Vec<u8>,
    },
    /// A Digital Credentials JSON request.
    Json(Vec<u8>),
    /// A desktop→phone update: valid CBOR, ignored (§8.2).
    UpdateIgnored,
    /// The desktop shut the session down; close the connection.
    Shutdown,
}

/// [`PhoneEvent`] borrowing its bytes from the session ([`PhoneOpen::receive_borrowed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhoneFrame<'a> {
    /// A CTAP request: command byte and CBOR parameters.
    CtapRequest {
        /// CTAP command.
        command: Command,
        /// CBOR parameters.
        params: &'a [u8],
    },
    /// A Digital Credentials JSON request.
    Json(&'a [u8]),
    /// A desktop→phone update: valid CBOR, ignored (§8.2).
    UpdateIgnored,
    /// The desktop shut the session down; close the connection.
    Shutdown,
}

/// Message 2 is ready; the post-handshake message must be sent first.
#[derive(Debug)]
pub struct PhoneHandshaken {
    crypter: Crypter,
    handshake_hash: [u8; 32],
    /// `Some` in QR sessions: the key linking signatures are made for.
    desktop_qr: Option<PublicKey>,
}

impl PhoneHandshaken {
    /// QR-initiated: `desktop_identity` is key 0 of the scanned QR code, decompressed.
    pub fn respond_qr(
        psk: &Psk,
        desktop_identity: &PublicKey,
        msg1: &[u8],
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<(Self, [u8; HANDSHAKE_MESSAGE_LEN]), SessionError> {
        Self::respond_with_ephemeral(
            ResponderKeys::Qr { desktop_identity },
            psk,
            msg1,
            SecretKey::random(rng),
        )
    }

    /// State-assisted: the phone's own identity key.
    pub fn respond_linked(
        psk: &Psk,
        phone_identity: &SecretKey,
        msg1: &[u8],
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<(Self, [u8; HANDSHAKE_MESSAGE_LEN]), SessionError> {
        Self::respond_with_ephemeral(
            ResponderKeys::Linked { phone_identity },
            psk,
            msg1,
            SecretKey::random(rng),
        )
    }

    /// Deterministic response with a given ephemeral (vectors only).
    #[doc(hidden)]
    pub fn respond_with_ephemeral(
        keys: ResponderKeys<'_>,
        psk: &Psk,
        msg1: &[u8],
        ephemeral: SecretKey,
    ) -> Result<(Self, [u8; HANDSHAKE_MESSAGE_LEN]), SessionError> {
        let desktop_qr = match keys {
            ResponderKeys::Qr { desktop_identity } => Some(*desktop_identity),
            ResponderKeys::Linked { .. } => None,
        };
        let (est, msg2) = respond_with_ephemeral(keys, psk, msg1, ephemeral)?;
        let phase = PhoneHandshaken {
            crypter: est.crypter,
            handshake_hash: est.handshake_hash,
            desktop_qr,
        };
        Ok((phase, msg2))
    }

    /// The state a handshake would have produced, from its outputs (fuzzing and tests only:
    /// an established session without the P-256 handshake's cost per input). `crypter` holds
    /// the phone's traffic keys (write = k2, read = k1); `desktop_qr` is `Some` for a QR
    /// session.
    #[doc(hidden)]
    pub fn from_established_for_tests(
        crypter: Crypter,
        handshake_hash: [u8; 32],
        desktop_qr: Option<PublicKey>,
    ) -> Self {
        PhoneHandshaken { crypter, handshake_hash, desktop_qr }
    }

    /// `h` after message 2.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// The linking signature for this session (QR sessions only), for linking info carried in
    /// the post-handshake message itself (key 2: revision 0, where no update message exists).
    pub fn linking_signature(&self, phone_identity: &SecretKey) -> Result<[u8; 32], SessionError> {
        let desktop = self.desktop_qr.as_ref().ok_or(SessionError::LinkingNeedsQrSession)?;
        Ok(LinkingInfo::sign(phone_identity, desktop, &self.handshake_hash))
    }

    /// Seals the post-handshake message (write sequence 0, no type byte).
    pub fn send_post_handshake(
        self,
        message: &PostHandshake,
    ) -> Result<(PhoneOpen, Vec<u8>), SessionError> {
        self.send_post_handshake_revision(message, Revision::One)
    }

    /// Like [`Self::send_post_handshake`] in the given revision: [`Revision::Zero`] pads the
    /// message the legacy way (§11.3) and makes every later frame untyped (a legacy phone;
    /// the virtual phone's lab switch). Linking info then belongs in key 2 of `message`.
    pub fn send_post_handshake_revision(
        mut self,
        message: &PostHandshake,
        revision: Revision,
    ) -> Result<(PhoneOpen, Vec<u8>), SessionError> {
        let plain = match revision {
            Revision::One => message.encode(),
            Revision::Zero => message.encode_revision0(),
        };
        let mut out = Vec::new();
        self.crypter.seal_plain(&plain, &mut out)?;
        let open = PhoneOpen {
            crypter: self.crypter,
            handshake_hash: self.handshake_hash,
            desktop_qr: self.desktop_qr,
            scratch: Vec::new(),
            failed: false,
            shut_down: false,
            revision,
        };
        Ok((open, out))
    }
}

/// The data phase on the phone.
#[derive(Debug)]
pub struct PhoneOpen {
    crypter: Crypter,
    handshake_hash: [u8; 32],
    desktop_qr: Option<PublicKey>,
    scratch: Vec<u8>,
    failed: bool,
    /// The desktop sent shutdown: nothing more is received, but a late update may still be
    /// sent (the desktop keeps reading for a while, §8.4).
    shut_down: bool,
    revision: Revision,
}

impl PhoneOpen {
    /// `h` after message 2.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// The linking signature for this session (QR sessions only): fill
    /// [`LinkingInfo::signature`] with it before [`PhoneOpen::send_update`].
    pub fn linking_signature(&self, phone_identity: &SecretKey) -> Result<[u8; 32], SessionError> {
        let desktop = self.desktop_qr.as_ref().ok_or(SessionError::LinkingNeedsQrSession)?;
        Ok(LinkingInfo::sign(phone_identity, desktop, &self.handshake_hash))
    }

    /// Seals Chrome's constant-size update (`None` = padding only). Linking info is refused in
    /// linked sessions, where the desktop could not verify it.
    pub fn send_update(&mut self, linking: Option<&LinkingInfo>) -> Result<Vec<u8>, SessionError> {
        if self.revision == Revision::Zero {
            return Err(SessionError::UnexpectedFrame {
                frame: FrameType::Update,
                why: "revision 0 has no update messages (linking goes in post-handshake key 2)",
            });
        }
        if linking.is_some() && self.desktop_qr.is_none() {
            return Err(SessionError::LinkingNeedsQrSession);
        }
        self.seal_plain(&encode_padded_update(linking))
    }

    /// Seals a CTAP response: `[0x01] ‖ status ‖ body`.
    pub fn respond_ctap(
        &mut self,
        status: StatusCode,
        body: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        let mut out = Vec::new();
        self.respond_ctap_into(status, body, &mut out)?;
        Ok(out)
    }

    /// Like [`Self::respond_ctap`] but seals into `out` in place, reusing its capacity: no
    /// allocation per frame once `out` has grown to the largest response.
    pub fn respond_ctap_into(
        &mut self,
        status: StatusCode,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        // After the desktop's shutdown no request is outstanding: only a late update may go.
        if self.failed || self.shut_down {
            return Err(SessionError::Failed);
        }
        out.clear();
        if self.revision == Revision::One {
            out.push(FrameType::Ctap as u8);
        }
        out.push(status.to_u8());
        out.extend_from_slice(body);
        let plaintext_len = out.len();
        out.resize(crate::hybrid::crypter::sealed_len(plaintext_len), 0);
        match self.crypter.seal_in_place(out, plaintext_len) {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e.into())
            }
        }
    }

    /// Seals the answer to a Digital Credentials request: `[0x03] ‖ JSON` (§8.2; a reply has
    /// the request's type). Only in revision 1, and not after the desktop's shutdown.
    pub fn respond_json(&mut self, json: &[u8]) -> Result<Vec<u8>, SessionError> {
        if self.failed || self.shut_down {
            return Err(SessionError::Failed);
        }
        if self.revision == Revision::Zero {
            return Err(SessionError::DcNotSupported);
        }
        if json.is_empty() || core::str::from_utf8(json).is_err() {
            return Err(SessionError::BadJson);
        }
        let mut out = Vec::new();
        self.crypter.seal_frame(FrameType::Json, json, &mut out)?;
        Ok(out)
    }

    fn seal_plain(&mut self, plain: &[u8]) -> Result<Vec<u8>, SessionError> {
        if self.failed {
            return Err(SessionError::Failed);
        }
        let mut out = Vec::new();
        self.crypter.seal_plain(plain, &mut out)?;
        Ok(out)
    }

    /// Like [`Self::receive`] but borrows the request from the session's reusable scratch
    /// buffer instead of copying it out: no allocation per frame once the scratch has grown to
    /// the largest request.
    pub fn receive_borrowed(&mut self, ciphertext: &[u8]) -> Result<PhoneFrame<'_>, SessionError> {
        if self.failed || self.shut_down {
            return Err(SessionError::Failed);
        }
        let n = match open_into(&mut self.crypter, &mut self.scratch, ciphertext) {
            Ok(n) => n,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        let parsed = match self.revision {
            Revision::One => Frame::parse(&self.scratch[..n]),
            // Revision 0: every desktop frame is an untyped CTAP request.
            Revision::Zero if n == 0 => Err(crate::hybrid::messages::MessageError::EmptyFrame),
            Revision::Zero => Ok(Frame::Ctap(&self.scratch[..n])),
        };
        let frame = match parsed {
            Ok(Frame::Shutdown) => Ok(PhoneFrame::Shutdown),
            Ok(Frame::Ctap(req)) => {
                let (&command, params) = req.split_first().unwrap_or((&0, &[]));
                Ok(PhoneFrame::CtapRequest { command: Command::from_u8(command), params })
            }
            Ok(Frame::Json(json)) => Ok(PhoneFrame::Json(json)),
            Ok(Frame::Update(payload)) => crate::cbor::Value::decode(payload)
                .map(|_| PhoneFrame::UpdateIgnored)
                .map_err(|e| crate::hybrid::messages::MessageError::Update(e).into()),
            Err(e) => Err(e.into()),
        };
        self.failed = frame.is_err();
        self.shut_down = matches!(frame, Ok(PhoneFrame::Shutdown));
        frame
    }

    /// Opens the next frame from the desktop. After an error the session is over; after a
    /// shutdown nothing more is received (a late update may still be sent).
    pub fn receive(&mut self, ciphertext: &[u8]) -> Result<PhoneEvent, SessionError> {
        if self.failed || self.shut_down {
            return Err(SessionError::Failed);
        }
        let result = self.receive_inner(ciphertext);
        self.failed = result.is_err();
        self.shut_down = matches!(result, Ok(PhoneEvent::Shutdown));
        result
    }

    fn receive_inner(&mut self, ciphertext: &[u8]) -> Result<PhoneEvent, SessionError> {
        let n = open_into(&mut self.crypter, &mut self.scratch, ciphertext)?;
        let frame = match self.revision {
            Revision::One => Frame::parse(&self.scratch[..n])?,
            Revision::Zero if n == 0 => {
                return Err(crate::hybrid::messages::MessageError::EmptyFrame.into())
            }
            Revision::Zero => Frame::Ctap(&self.scratch[..n]),
        };
        Ok(match frame {
            Frame::Shutdown => PhoneEvent::Shutdown,
            Frame::Ctap(req) => {
                let (&command, params) = req.split_first().unwrap_or((&0, &[]));
                PhoneEvent::CtapRequest {
                    command: Command::from_u8(command),
                    params: params.to_vec(),
                }
            }
            Frame::Json(json) => PhoneEvent::Json(json.to_vec()),
            Frame::Update(payload) => {
                crate::cbor::Value::decode(payload)
                    .map_err(crate::hybrid::messages::MessageError::Update)?;
                PhoneEvent::UpdateIgnored
            }
        })
    }
}
