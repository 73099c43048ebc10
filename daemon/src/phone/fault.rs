//! The lab fault switches ([`Faults`]) as a policy on the phone's **outgoing frames**, like
//! `virtual_key::fault` for the virtual key: the session loop says which frame it is about to send
//! ([`Outgoing`]) and the policy decides what goes on the wire ([`FramePolicy::apply`]) — the frame
//! as it is, a corrupted copy, or nothing — and whether the tunnel closes after it. The protocol
//! loop itself has no fault branches.
//!
//! `--fail-at ctap` is not a frame fault: it changes the CTAP *answer*
//! ([`FramePolicy::denies_ctap`]), which is then sealed and sent normally.

use super::{FailAt, Faults};

/// The frames a phone session sends, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outgoing {
    /// Noise message 2.
    HandshakeResponse,
    /// The post-handshake message (getInfo).
    PostHandshake,
    /// The update carrying linking info.
    Linking,
    /// A CTAP response.
    CtapResponse,
}

impl Outgoing {
    fn name(self) -> &'static str {
        match self {
            Outgoing::HandshakeResponse => "message 2",
            Outgoing::PostHandshake => "post-handshake",
            Outgoing::Linking => "linking",
            Outgoing::CtapResponse => "response",
        }
    }
}

/// What the policy decided for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Send the (possibly corrupted) frame and carry on.
    Send,
    /// Send the (possibly corrupted) frame, then close the tunnel: the fault that fired.
    SendThenClose(String),
}

/// The fault switches applied to one session's outgoing frames.
#[derive(Debug)]
pub(super) struct FramePolicy {
    faults: Faults,
    sent: u32,
}

impl FramePolicy {
    /// A fresh policy (no frame sent yet).
    pub fn new(faults: &Faults) -> Self {
        FramePolicy { faults: faults.clone(), sent: 0 }
    }

    /// Frames that went out so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// `Some(fault)` if the tunnel must close before anything is sent (`--drop-after 0`).
    pub fn close_before_first_frame(&self) -> Option<String> {
        (self.faults.drop_after == Some(0))
            .then(|| "drop-after: closed before message 2".to_owned())
    }

    /// Whether CTAP requests are answered with CTAP2_ERR_OPERATION_DENIED (`--fail-at ctap`).
    pub fn denies_ctap(&self) -> bool {
        self.faults.fail_at == Some(FailAt::Ctap)
    }

    /// Decides what happens to `frame` (corrupting it in place if a fault says so); counts it as
    /// sent.
    pub fn apply(&mut self, kind: Outgoing, frame: &mut [u8]) -> Verdict {
        self.sent += 1;
        match (self.faults.fail_at, kind) {
            (Some(FailAt::Handshake), Outgoing::HandshakeResponse) => {
                // Flip a bit in the ephemeral key's encoding and in the tag: not a valid point
                // or a wrong transcript.
                for i in [40, 80] {
                    if let Some(b) = frame.get_mut(i) {
                        *b ^= 0x01;
                    }
                }
                return Verdict::SendThenClose("handshake: corrupt message 2 sent".into());
            }
            (Some(FailAt::PostHandshake), Outgoing::PostHandshake) => {
                if let Some(b) = frame.last_mut() {
                    *b ^= 0x80; // breaks the AES-GCM tag
                }
                return Verdict::SendThenClose("post-handshake: corrupt message sent".into());
            }
            _ => {}
        }
        match self.faults.drop_after {
            Some(n) if self.sent >= n => {
                Verdict::SendThenClose(format!("drop-after: closed after {}", kind.name()))
            }
            _ => Verdict::Send,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupts_only_the_chosen_frame_and_closes_after_it() {
        let faults = Faults { fail_at: Some(FailAt::Handshake), ..Faults::default() };
        let mut p = FramePolicy::new(&faults);
        let mut msg2 = [0u8; 81];
        let v = p.apply(Outgoing::HandshakeResponse, &mut msg2);
        assert_eq!((msg2[40], msg2[80]), (1, 1));
        assert!(matches!(v, Verdict::SendThenClose(w) if w.contains("message 2")));

        let faults = Faults { fail_at: Some(FailAt::PostHandshake), ..Faults::default() };
        let mut p = FramePolicy::new(&faults);
        let mut msg2 = [0u8; 81];
        assert_eq!(p.apply(Outgoing::HandshakeResponse, &mut msg2), Verdict::Send);
        assert_eq!(msg2, [0u8; 81], "other frames untouched");
        let mut post = vec![0u8; 30];
        assert!(matches!(p.apply(Outgoing::PostHandshake, &mut post), Verdict::SendThenClose(_)));
        assert_eq!(post[29], 0x80);
    }

    #[test]
    fn drop_after_counts_frames() {
        let p = FramePolicy::new(&Faults { drop_after: Some(0), ..Faults::default() });
        assert!(p.close_before_first_frame().is_some());
        let mut p = FramePolicy::new(&Faults { drop_after: Some(2), ..Faults::default() });
        assert!(p.close_before_first_frame().is_none());
        assert_eq!(p.apply(Outgoing::HandshakeResponse, &mut [0; 81]), Verdict::Send);
        assert_eq!(
            p.apply(Outgoing::PostHandshake, &mut [0; 8]),
            Verdict::SendThenClose("drop-after: closed after post-handshake".into())
        );
        assert_eq!(p.sent(), 2);
        assert!(!p.denies_ctap());
        assert!(FramePolicy::new(&Faults { fail_at: Some(FailAt::Ctap), ..Faults::default() })
            .denies_ctap());
    }
}
