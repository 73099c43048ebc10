//! Shared by the virtual-key and hostile-device tests: a minimal CTAPHID driver loop over the
//! real UDP-HID transport and `HostChannel` (the run loop of the `ctaphid` module docs), and
//! CTAP2 ceremony helpers built on the protocol crate's request/response types.
//!
//! The `usbclient` branch owns the product driver loop; this one exists so these tests exercise
//! the real transport and host state machine without depending on unmerged work.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    framing, AttestationObject, AuthenticatorData, Command as Ctap2Command, CommandOptions,
    CoseAlgorithm, CredentialDescriptor, CredentialParameters, GetAssertionRequest,
    GetAssertionResponse, MakeCredentialRequest, MakeCredentialResponse, RelyingParty, User,
};
use cablebridge_protocol::ctaphid::{
    Command, DeviceInfo, HostChannel, HostConfig, HostError, HostEvent, KeepAliveStatus,
};
use cablebridged::hid::{DeviceAddress, HidError, HidTransport, UdpHid};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

/// How a driven transaction failed.
#[derive(Debug)]
pub enum DriveError {
    /// The host state machine gave up (typed CTAPHID error).
    Host(HostError),
    /// The transport failed.
    Hid(HidError),
}

/// What a transaction produced.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<(Command, Vec<u8>), DriveError>,
    pub keepalives: Vec<KeepAliveStatus>,
}

/// One host channel on one UDP-HID device.
pub struct Client {
    pub hid: UdpHid,
    pub chan: HostChannel,
    rng: StdRng,
}

impl Client {
    /// Opens `udp:` + `addr` through the real driver.
    pub async fn open(addr: SocketAddr) -> Client {
        let address: DeviceAddress = format!("udp:{addr}").parse().unwrap();
        let DeviceAddress::Udp(udp) = address else { panic!("not udp") };
        let hid = UdpHid::open(&udp).await.unwrap();
        Client { hid, chan: HostChannel::new(HostConfig::default()), rng: StdRng::from_entropy() }
    }

    /// Wraps an already opened transport.
    pub fn from_hid(hid: UdpHid) -> Client {
        Client { hid, chan: HostChannel::new(HostConfig::default()), rng: StdRng::from_entropy() }
    }

    /// INIT (broadcast first time, resync afterwards).
    pub async fn init(&mut self) -> Result<DeviceInfo, DriveError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        self.chan.init(&mut self.rng, deadline.into_std()).map_err(DriveError::Host)?;
        match self.drive(None).await.result {
            Ok(_) => Ok(*self.chan.device_info().unwrap()),
            Err(e) => Err(e),
        }
    }

    /// One transaction with a deadline; `cancel_after` sends CANCEL that long after the start.
    pub async fn transact(
        &mut self,
        cmd: Command,
        payload: &[u8],
        timeout: Duration,
        cancel_after: Option<Duration>,
    ) -> Outcome {
        let now = Instant::now();
        if let Err(e) = self.chan.start_transaction(cmd, payload, (now + timeout).into_std()) {
            return Outcome { result: Err(DriveError::Host(e)), keepalives: vec![] };
        }
        self.drive(cancel_after.map(|d| now + d)).await
    }

    /// A CTAP2 request; returns the raw response (status ‖ CBOR).
    pub async fn cbor(&mut self, request: &[u8], timeout: Duration) -> Outcome {
        self.transact(Command::Cbor, request, timeout, None).await
    }

    /// A CTAP2 request that must succeed at the CTAPHID level; returns status ‖ CBOR.
    pub async fn cbor_ok(&mut self, request: &[u8]) -> Vec<u8> {
        let out = self.cbor(request, Duration::from_secs(5)).await;
        out.result.unwrap().1
    }

    async fn drive(&mut self, mut cancel_at: Option<Instant>) -> Outcome {
        let mut keepalives = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            while let Some(report) = self.chan.poll_transmit() {
                if let Err(e) = self.hid.send_report(&report).await {
                    return Outcome { result: Err(DriveError::Hid(e)), keepalives };
                }
            }
            while let Some(event) = self.chan.poll_event() {
                match event {
                    HostEvent::Initialized(_) => {
                        return Outcome { result: Ok((Command::Init, vec![])), keepalives }
                    }
                    HostEvent::KeepAlive(s) => keepalives.push(s),
                    HostEvent::Response { cmd, payload } => {
                        return Outcome { result: Ok((cmd, payload)), keepalives }
                    }
                    HostEvent::Failed(e) => {
                        return Outcome { result: Err(DriveError::Host(e)), keepalives }
                    }
                    _ => {}
                }
            }
            let timer = self.chan.poll_timeout().map(Instant::from_std);
            tokio::select! {
                got = self.hid.recv_report(&mut buf) => match got {
                    Ok(n) => self.chan.handle_report(&buf[..n], Instant::now().into_std()),
                    Err(e) => return Outcome { result: Err(DriveError::Hid(e)), keepalives },
                },
                _ = sleep_opt(timer) => self.chan.handle_timeout(Instant::now().into_std()),
                _ = sleep_opt(cancel_at) => {
                    cancel_at = None;
                    self.chan.cancel(Instant::now().into_std());
                }
            }
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub fn client_data_hash(tag: u8) -> [u8; 32] {
    [tag; 32]
}

/// makeCredential request bytes (command byte ‖ CBOR).
pub fn make_credential_request(rp: &str, user: &[u8], rk: bool, tag: u8) -> Vec<u8> {
    let req = MakeCredentialRequest {
        client_data_hash: client_data_hash(tag),
        rp: RelyingParty { id: rp.into(), name: Some("Example".into()) },
        user: User {
            id: user.to_vec(),
            name: Some("alice".into()),
            display_name: Some("Alice".into()),
        },
        pub_key_cred_params: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
        exclude_list: vec![],
        extensions: None,
        options: CommandOptions { rk: Some(rk), up: None, uv: None },
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    };
    framing::encode_request(Ctap2Command::MakeCredential, Some(&req.to_cbor()))
}

/// getAssertion request bytes.
pub fn get_assertion_request(rp: &str, cred_id: Option<&[u8]>, tag: u8) -> Vec<u8> {
    let req = GetAssertionRequest {
        rp_id: rp.into(),
        client_data_hash: client_data_hash(tag),
        allow_list: cred_id
            .map(|id| vec![CredentialDescriptor::public_key(id)])
            .unwrap_or_default(),
        extensions: None,
        options: CommandOptions::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
    };
    framing::encode_request(Ctap2Command::GetAssertion, Some(&req.to_cbor()))
}

/// Decodes a successful makeCredential response and verifies its attestation signature.
pub fn check_make_credential(
    response: &[u8],
    tag: u8,
) -> (MakeCredentialResponse, AuthenticatorData) {
    let body = framing::decode_ok_body(response).unwrap();
    let mc = MakeCredentialResponse::from_cbor(&body).unwrap();
    let obj = AttestationObject::from(mc.clone());
    obj.verify(&client_data_hash(tag)).unwrap();
    let ad = AuthenticatorData::parse(&mc.auth_data).unwrap();
    (mc, ad)
}

/// Decodes a successful getAssertion response and verifies its signature with `ad`'s key.
pub fn check_assertion(response: &[u8], ad: &AuthenticatorData, tag: u8) -> AuthenticatorData {
    let body = framing::decode_ok_body(response).unwrap();
    let ga = GetAssertionResponse::from_cbor(&body).unwrap();
    let key = &ad.attested_credential.as_ref().unwrap().public_key;
    cablebridge_protocol::ctap2::verify::verify_assertion(key, &ga, &client_data_hash(tag))
        .unwrap();
    AuthenticatorData::parse(&ga.auth_data).unwrap()
}

/// makeCredential then getAssertion against the device; proves the key (and the channel) work.
pub async fn ceremony(client: &mut Client, rp: &str) -> u32 {
    let resp = client.cbor_ok(&make_credential_request(rp, b"user-1", false, 1)).await;
    let (_, ad) = check_make_credential(&resp, 1);
    let cred_id = ad.attested_credential.as_ref().unwrap().credential_id.clone();
    let resp = client.cbor_ok(&get_assertion_request(rp, Some(&cred_id), 2)).await;
    check_assertion(&resp, &ad, 2).sign_count
}

/// getInfo body.
pub fn get_info_request() -> Vec<u8> {
    framing::encode_request(Ctap2Command::GetInfo, None::<&Value>)
}
