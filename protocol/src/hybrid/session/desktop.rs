//! Desktop (Noise initiator) phases of a hybrid session (§1.1 desktop checklist, §8, §9.2).

use super::{open_into, SessionError, CTAP_GET_INFO};
use crate::ctap2::{Command, StatusCode};
use crate::hybrid::crypter::Crypter;
use crate::hybrid::keys::Psk;
use crate::hybrid::messages::{Frame, FrameType, LinkingInfo, PostHandshake, Revision, Update};
use crate::hybrid::noise::{IdentityKeyPair, Initiator, InitiatorKeys, HANDSHAKE_MESSAGE_LEN};
use p256::{PublicKey, SecretKey};
use zeroize::{Zeroize, Zeroizing};

/// What a received frame meant to the desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DesktopEvent {
    /// The answer to the one CTAP request: status byte and CBOR body.
    CtapResponse {
        /// CTAP status ([`StatusCode::Ok`] = success; unknown bytes are [`StatusCode::Other`]).
        status: StatusCode,
        /// CBOR response body (may be empty for errors).
        body: Vec<u8>,
    },
    /// Linking info whose signature verified over this session's handshake hash (QR only).
    LinkingInfo(LinkingInfo),
    /// The answer to a Digital Credentials request: the phone's JSON bytes (UTF-8, unparsed).
    JsonResponse(Vec<u8>),
    /// An update without linking info (Chrome's constant-size padding-only update).
    PaddingOnlyUpdate,
    /// An update in a linked session: it cannot be verified and is discarded (§9.2).
    UpdateDiscarded,
}

/// State shared by every phase after the handshake.
#[derive(Debug)]
struct Channel {
    crypter: Crypter,
    handshake_hash: [u8; 32],
    /// `Some` in QR sessions: verifies linking signatures.
    qr_identity: Option<SecretKey>,
    /// Reused for every received frame; wiped after each (updates carry link secrets) and on
    /// drop.
    scratch: Zeroizing<Vec<u8>>,
    failed: bool,
    /// What the post-handshake message said; revision 0 frames carry no type byte.
    revision: Revision,
}

impl Channel {
    /// Opens a frame and interprets it; any error poisons the channel.
    fn receive(
        &mut self,
        ciphertext: &[u8],
        expected: Option<FrameType>,
    ) -> Result<DesktopEvent, SessionError> {
        if self.failed {
            return Err(SessionError::Failed);
        }
        let result = self.receive_inner(ciphertext, expected);
        // Zeroing keeps the allocation: no per-frame allocation, no plaintext left behind.
        self.scratch.zeroize();
        self.failed = result.is_err();
        result
    }

    fn receive_inner(
        &mut self,
        ciphertext: &[u8],
        expected: Option<FrameType>,
    ) -> Result<DesktopEvent, SessionError> {
        let ctap_expected = expected == Some(FrameType::Ctap);
        let n = open_into(&mut self.crypter, &mut self.scratch, ciphertext)?;
        if self.revision == Revision::Zero {
            // Revision 0: every frame from the phone is a CTAP reply, untyped (§8.1).
            if !ctap_expected {
                return Err(SessionError::UnexpectedFrame {
                    frame: FrameType::Ctap,
                    why: "no CTAP request is outstanding (revision 0 has no update messages)",
                });
            }
            let Some((&status, body)) = self.scratch[..n].split_first() else {
                return Err(crate::hybrid::messages::MessageError::EmptyFrame.into());
            };
            return Ok(DesktopEvent::CtapResponse {
                status: StatusCode::from_u8(status),
                body: body.to_vec(),
            });
        }
        match Frame::parse(&self.scratch[..n])? {
            Frame::Shutdown => Err(SessionError::UnexpectedFrame {
                frame: FrameType::Shutdown,
                why: "shutdown is sent by the desktop only",
            }),
            Frame::Json(reply) if expected == Some(FrameType::Json) => {
                core::str::from_utf8(reply).map_err(|_| SessionError::BadJson)?;
                Ok(DesktopEvent::JsonResponse(reply.to_vec()))
            }
            Frame::Json(_) => Err(SessionError::UnexpectedFrame {
                frame: FrameType::Json,
                why: "a reply must have the request's type and no JSON request is outstanding",
            }),
            Frame::Ctap(_) if !ctap_expected => Err(SessionError::UnexpectedFrame {
                frame: FrameType::Ctap,
                why: "no CTAP request is outstanding",
            }),
            Frame::Ctap(reply) => {
                let (&status, body) = reply.split_first().unwrap_or((&0, &[]));
                Ok(DesktopEvent::CtapResponse {
                    status: StatusCode::from_u8(status),
                    body: body.to_vec(),
                })
            }
            Frame::Update(payload) => self.update(payload),
        }
    }

    fn update(&self, payload: &[u8]) -> Result<DesktopEvent, SessionError> {
        let Some(qr_identity) = &self.qr_identity else {
            // Linked session: nothing to verify against; must still be CBOR (§8.2).
            crate::cbor::Value::decode(payload)
                .map_err(crate::hybrid::messages::MessageError::Update)?;
            return Ok(DesktopEvent::UpdateDiscarded);
        };
        match Update::decode(payload)?.linking {
            None => Ok(DesktopEvent::PaddingOnlyUpdate),
            Some(link) => {
                link.verify(qr_identity, &self.handshake_hash)?;
                Ok(DesktopEvent::LinkingInfo(link))
            }
        }
    }

    fn seal(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<Vec<u8>, SessionError> {
        if self.failed {
            return Err(SessionError::Failed);
        }
        let mut out = Vec::with_capacity(crate::hybrid::crypter::sealed_len(payload.len() + 1));
        self.crypter.seal_frame(frame_type, payload, &mut out)?;
        Ok(out)
    }
}

/// Message 1 sent; waiting for message 2.
#[derive(Debug)]
pub struct DesktopHandshake {
    noise: Initiator,
    qr_identity: Option<SecretKey>,
}

impl DesktopHandshake {
    /// QR-initiated (KNpsk0): `desktop_identity` is the key pair whose public half is in the QR
    /// code.
    pub fn start_qr(
        psk: &Psk,
        desktop_identity: &IdentityKeyPair,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> (Self, [u8; HANDSHAKE_MESSAGE_LEN]) {
        Self::start_with_ephemeral(
            InitiatorKeys::Qr { desktop_identity },
            psk,
            SecretKey::random(rng),
        )
    }

    /// State-assisted (NKpsk0) against the stored phone identity key.
    pub fn start_linked(
        psk: &Psk,
        phone_identity: &PublicKey,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> (Self, [u8; HANDSHAKE_MESSAGE_LEN]) {
        Self::start_with_ephemeral(
            InitiatorKeys::Linked { phone_identity },
            psk,
            SecretKey::random(rng),
        )
    }

    /// Deterministic start with a given ephemeral (vectors only).
    #[doc(hidden)]
    pub fn start_with_ephemeral(
        keys: InitiatorKeys<'_>,
        psk: &Psk,
        ephemeral: SecretKey,
    ) -> (Self, [u8; HANDSHAKE_MESSAGE_LEN]) {
        let qr_identity = match keys {
            InitiatorKeys::Qr { desktop_identity } => Some(desktop_identity.secret().clone()),
            InitiatorKeys::Linked { .. } => None,
        };
        let (noise, msg1) = Initiator::start_with_ephemeral(keys, psk, ephemeral);
        (DesktopHandshake { noise, qr_identity }, msg1)
    }

    /// Processes message 2 (exactly 81 bytes).
    pub fn read_response(self, msg2: &[u8]) -> Result<DesktopAwaitingPostHandshake, SessionError> {
        let est = self.noise.read_response(msg2)?;
        Ok(DesktopAwaitingPostHandshake {
            channel: Channel {
                crypter: est.crypter,
                handshake_hash: est.handshake_hash,
                qr_identity: self.qr_identity,
                scratch: Zeroizing::new(Vec::new()),
                failed: false,
                revision: Revision::One,
            },
        })
    }
}

/// Handshake done; the phone's first frame must be the post-handshake message.
#[derive(Debug)]
pub struct DesktopAwaitingPostHandshake {
    channel: Channel,
}

impl DesktopAwaitingPostHandshake {
    /// The state a handshake would have produced, from its outputs (fuzzing and tests only:
    /// an established session without the P-256 handshake's cost per input). `crypter` holds
    /// the desktop's traffic keys (write = k1, read = k2); `qr_identity` is `Some` for a QR
    /// session (linking signatures are verified against it).
    #[doc(hidden)]
    pub fn from_established_for_tests(
        crypter: Crypter,
        handshake_hash: [u8; 32],
        qr_identity: Option<SecretKey>,
    ) -> Self {
        DesktopAwaitingPostHandshake {
            channel: Channel {
                crypter,
                handshake_hash,
                qr_identity,
                scratch: Zeroizing::new(Vec::new()),
                failed: false,
                revision: Revision::One,
            },
        }
    }

    /// `h` after message 2.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.channel.handshake_hash
    }

    /// Decrypts and decodes the post-handshake message (§8.1), either revision: a padded
    /// (revision-0) message switches the session to untyped frames. Legacy linking info in
    /// key 2 is kept only in QR sessions and only if its signature verifies.
    pub fn read_post_handshake(mut self, ciphertext: &[u8]) -> Result<DesktopOpen, SessionError> {
        let ch = &mut self.channel;
        let n = open_into(&mut ch.crypter, &mut ch.scratch, ciphertext)?;
        let post = PostHandshake::decode_revision(&ch.scratch[..n]);
        // Legacy linking info (key 2) may carry a link secret.
        ch.scratch.zeroize();
        let (mut post, revision) = post?;
        ch.revision = revision;
        if let Some(link) = post.legacy_linking.take() {
            if let Some(qr) = &ch.qr_identity {
                if link.verify(qr, &ch.handshake_hash).is_ok() {
                    post.legacy_linking = Some(link);
                }
            }
        }
        Ok(DesktopOpen { channel: self.channel, post })
    }
}

/// Post-handshake received; no CTAP request sent yet.
#[derive(Debug)]
pub struct DesktopOpen {
    channel: Channel,
    post: PostHandshake,
}

impl DesktopOpen {
    /// The cached getInfo response body: answer `authenticatorGetInfo` with it (§8.1).
    pub fn get_info(&self) -> Option<&[u8]> {
        self.post.get_info.as_deref()
    }

    /// The decoded post-handshake message (legacy linking verified or removed).
    pub fn post_handshake(&self) -> &PostHandshake {
        &self.post
    }

    /// The revision the phone speaks (from the post-handshake message's form).
    pub fn revision(&self) -> Revision {
        self.channel.revision
    }

    /// `h` after message 2.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.channel.handshake_hash
    }

    /// Reads an update that arrives before the request (Chrome's phone sends one right away).
    pub fn receive(&mut self, ciphertext: &[u8]) -> Result<DesktopEvent, SessionError> {
        self.channel.receive(ciphertext, None)
    }

    /// Seals the connection's one Digital Credentials request (§8.2 type 3): `[0x03] ‖ JSON`.
    /// Refused unless the phone announced `"dc"` in a revision-1 post-handshake message.
    pub fn send_json(
        self,
        json: &[u8],
    ) -> Result<(DesktopAwaitingResponse, Vec<u8>), SessionError> {
        if self.channel.revision == Revision::Zero || !self.post.supports_dc() {
            return Err(SessionError::DcNotSupported);
        }
        if json.is_empty() || core::str::from_utf8(json).is_err() {
            return Err(SessionError::BadJson);
        }
        let mut channel = self.channel;
        let ct = channel.seal(FrameType::Json, json)?;
        let next = DesktopAwaitingResponse {
            channel,
            post: self.post,
            answered: false,
            expects: FrameType::Json,
        };
        Ok((next, ct))
    }

    /// Seals the connection's one CTAP request (§8.3): `[0x01] ‖ command ‖ params`. One
    /// allocation (the returned frame); [`DesktopOpen::send_ctap_into`] reuses a buffer instead.
    pub fn send_ctap(
        self,
        command: Command,
        cbor_params: &[u8],
    ) -> Result<(DesktopAwaitingResponse, Vec<u8>), SessionError> {
        let mut out = Vec::new();
        let next = self.send_ctap_into(command, cbor_params, &mut out)?;
        Ok((next, out))
    }

    /// [`DesktopOpen::send_ctap`] into `out`: the frame is built and sealed in place there
    /// (`out` is cleared first and holds exactly the sealed frame afterwards), so a buffer with
    /// enough capacity costs no allocation.
    pub fn send_ctap_into(
        mut self,
        command: Command,
        cbor_params: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<DesktopAwaitingResponse, SessionError> {
        if command.to_u8() == CTAP_GET_INFO {
            return Err(SessionError::GetInfoIsLocal);
        }
        if !self.post.supports_ctap() {
            return Err(SessionError::CtapNotSupported);
        }
        if self.channel.failed {
            return Err(SessionError::Failed);
        }
        // Revision 0: `command ‖ params` with no type byte.
        let typed = usize::from(self.channel.revision == Revision::One);
        let plaintext_len = cbor_params.len() + 1 + typed;
        out.clear();
        out.resize(crate::hybrid::crypter::sealed_len(plaintext_len), 0);
        if typed == 1 {
            out[0] = FrameType::Ctap as u8;
        }
        out[typed] = command.to_u8();
        out[typed + 1..plaintext_len].copy_from_slice(cbor_params);
        let n = self.channel.crypter.seal_in_place(out, plaintext_len)?;
        out.truncate(n);
        Ok(DesktopAwaitingResponse {
            channel: self.channel,
            post: self.post,
            answered: false,
            expects: FrameType::Ctap,
        })
    }

    /// Seals `[0x00]` and closes the sending side. Revision 0 has no shutdown message: the
    /// returned frame is then empty (send nothing, just close).
    pub fn shutdown(self) -> Result<(DesktopClosed, Vec<u8>), SessionError> {
        shutdown(self.channel)
    }
}

/// The CTAP request is out; updates and exactly one CTAP response may arrive.
#[derive(Debug)]
pub struct DesktopAwaitingResponse {
    channel: Channel,
    post: PostHandshake,
    answered: bool,
    /// The request's type: the reply must have the same (§8.2).
    expects: FrameType,
}

impl DesktopAwaitingResponse {
    /// The cached getInfo.
    pub fn get_info(&self) -> Option<&[u8]> {
        self.post.get_info.as_deref()
    }

    /// Whether the CTAP response has arrived.
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Opens the next frame from the phone.
    pub fn receive(&mut self, ciphertext: &[u8]) -> Result<DesktopEvent, SessionError> {
        let expected = (!self.answered).then_some(self.expects);
        let event = self.channel.receive(ciphertext, expected)?;
        if matches!(event, DesktopEvent::CtapResponse { .. } | DesktopEvent::JsonResponse(_)) {
            self.answered = true;
        }
        Ok(event)
    }

    /// Seals `[0x00]` and closes the sending side; empty in revision 0 (no shutdown message
    /// exists there: send nothing, just close).
    pub fn shutdown(self) -> Result<(DesktopClosed, Vec<u8>), SessionError> {
        shutdown(self.channel)
    }

    /// The revision the phone speaks.
    pub fn revision(&self) -> Revision {
        self.channel.revision
    }
}

fn shutdown(mut channel: Channel) -> Result<(DesktopClosed, Vec<u8>), SessionError> {
    if channel.revision == Revision::Zero {
        if channel.failed {
            return Err(SessionError::Failed);
        }
        return Ok((DesktopClosed { channel }, Vec::new()));
    }
    let ct = channel.seal(FrameType::Shutdown, &[])?;
    Ok((DesktopClosed { channel }, ct))
}

/// Shutdown sent. Chrome keeps reading late updates for up to 3 minutes (§8.4); the driver owns
/// that timer and simply stops calling [`DesktopClosed::receive`].
#[derive(Debug)]
pub struct DesktopClosed {
    channel: Channel,
}

impl DesktopClosed {
    /// Reads a late update; a CTAP frame now is an error.
    pub fn receive(&mut self, ciphertext: &[u8]) -> Result<DesktopEvent, SessionError> {
        self.channel.receive(ciphertext, None)
    }
}
