//! Runs a [`Scenario`]: every step of every iteration through the engine's one entry point
//! ([`crate::ceremony::run`]), one [`Record`] per ceremony, policy verdicts from the same
//! [`Judge`] the CLI uses, and each step's expectation checked.
//!
//! Steps with `phone = "virtual"` get an in-process tunnel server on 127.0.0.1:0 and one virtual
//! phone for the whole run (so an authenticate step finds the credential a register step made),
//! wired with [`crate::testkit::with_phone`] over a Unix datagram advert socket in a private
//! temporary directory, as `demo` does. Everything else is the production path: USB keys by
//! address, real phones by QR code (handed to the caller's `qr` callback), linked phones from
//! the link store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cablebridge_protocol::authenticator::AttestationMode;
use tokio_util::sync::CancellationToken;

use super::report::Record;
use super::scenario::{Action, Expect, PhoneKind, ResolvedStep, Scenario, TransportName};
use super::LabRunError;
use crate::advert::AdvertSource;
use crate::ceremony::{
    AuthenticateOptions, CeremonyError, CeremonyEvent, CeremonyOutcome, CeremonyRequest,
    HybridTransport, LinkedTransport, ProgressDetail, RegisterOptions, Transport, UsbTransport,
};
use crate::desktop::DesktopConfig;
use crate::evidence::{Aaguid, AaguidTable};
use crate::hid::DeviceAddress;
use crate::phone::sink::AdvertSinkSpec;
use crate::phone::{PhoneConfig, PhoneState, VirtualPhone};
use crate::policy::{Judge, SelectedPolicy};
use crate::store::LinkStore;
use crate::testkit::EventLog;
use crate::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};

/// Called with each QR code URL a real-phone step shows.
pub type QrCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// Where things live and who hears about progress.
pub struct RunContext {
    /// Link store directory (linked steps).
    pub state_dir: Option<PathBuf>,
    /// Shown QR codes go here.
    pub qr: QrCallback,
    /// Ends the run: the ceremony in progress fails as cancelled, later ones are not started.
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext").field("state_dir", &self.state_dir).finish_non_exhaustive()
    }
}

/// The records of a run and whether it was cut short.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// One per ceremony run.
    pub records: Vec<Record>,
    /// Cancelled before every step of every iteration ran.
    pub interrupted: bool,
}

/// A registration made earlier in the iteration.
#[derive(Debug, Clone)]
struct Registered {
    credential_id: Vec<u8>,
    aaguid: Aaguid,
    name: Option<String>,
}

/// The in-process tunnel server and virtual phone.
struct VirtualRig {
    server: TunnelServerHandle,
    phone: VirtualPhone,
    advert_path: PathBuf,
    dir: tempfile::TempDir,
}

/// Loads a step's `policy`/`profile`/`mds` into the engine's [`Judge`] (as `--policy`,
/// `--profile`, `--mds` do).
fn load_judge(step: &ResolvedStep) -> Result<Judge, LabRunError> {
    let at = |m: String| format!("step {:?}: {m}", step.name);
    let mut table = AaguidTable::built_in();
    if let Some(path) = &step.mds {
        let blob = std::fs::read(path).map_err(|e| {
            let m = at(format!("cannot read mds {}: {e}", path.display()));
            if e.kind() == std::io::ErrorKind::NotFound {
                LabRunError::Usage(m)
            } else {
                LabRunError::Environment(m)
            }
        })?;
        table
            .extend_from_mds(&blob)
            .map_err(|e| LabRunError::Usage(at(format!("mds {}: {e}", path.display()))))?;
    }
    let policy = match &step.policy {
        Some(p) => Some(SelectedPolicy::load(p, step.profile.as_deref()).map_err(|e| {
            if e.is_environment() {
                LabRunError::Environment(at(e.to_string()))
            } else {
                LabRunError::Usage(at(e.to_string()))
            }
        })?),
        None => None,
    };
    Ok(Judge { table: Arc::new(table), policy, report_chain: step.mds.is_some() })
}

/// A scenario checked and ready: files loaded, addresses parsed.
pub struct LabRun {
    steps: Vec<ResolvedStep>,
    judges: Vec<Judge>,
    devices: Vec<Option<DeviceAddress>>,
    adverts: Vec<Option<AdvertSource>>,
    scenario: Scenario,
}

impl std::fmt::Debug for LabRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabRun").field("steps", &self.steps.len()).finish_non_exhaustive()
    }
}

impl LabRun {
    /// Checks everything that can be checked before any ceremony (usage errors first).
    pub fn prepare(scenario: Scenario) -> Result<LabRun, LabRunError> {
        let steps = scenario.resolve_steps().map_err(LabRunError::Usage)?;
        let judges = steps.iter().map(load_judge).collect::<Result<Vec<_>, _>>()?;
        let mut devices = Vec::new();
        let mut adverts = Vec::new();
        for s in &steps {
            let at = |m: String| LabRunError::Usage(format!("step {:?}: {m}", s.name));
            devices.push(match (&s.device, s.transport) {
                (Some(d), TransportName::Usb) => {
                    Some(d.parse::<DeviceAddress>().map_err(|e| at(e.to_string()))?)
                }
                _ => None,
            });
            let needs_source = s.transport == TransportName::Linked
                || (s.transport == TransportName::Hybrid && s.phone == PhoneKind::Real);
            adverts.push(if needs_source {
                Some(
                    s.advert_source
                        .parse::<AdvertSource>()
                        .map_err(|e: crate::advert::AdvertSourceError| at(e.to_string()))?,
                )
            } else {
                None
            });
        }
        let phone = &scenario.virtual_phone;
        if let Some(a) = &phone.aaguid {
            a.parse::<Aaguid>()
                .map_err(|e| LabRunError::Usage(format!("[virtual_phone] aaguid: {e}")))?;
        }
        if !matches!(phone.attestation.as_deref(), None | Some("none" | "packed")) {
            return Err(LabRunError::Usage(
                "[virtual_phone] attestation must be \"none\" or \"packed\"".to_owned(),
            ));
        }
        Ok(LabRun { steps, judges, devices, adverts, scenario })
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        self.scenario.name.as_deref().unwrap_or("scenario")
    }

    /// Steps per iteration.
    pub fn steps_per_iteration(&self) -> usize {
        self.steps.len()
    }

    /// `repeat` from the file, else 1.
    pub fn default_repeat(&self) -> u32 {
        self.scenario.repeat.unwrap_or(1).max(1)
    }

    async fn virtual_rig(&self) -> Result<VirtualRig, LabRunError> {
        let server = TunnelServer::bind(TunnelServerConfig::default())
            .await
            .map_err(|e| LabRunError::Environment(format!("virtual phone tunnel server: {e}")))?;
        // A private (0700) directory, removed on drop.
        let dir = tempfile::Builder::new().prefix("cablebridge-run-").tempdir().map_err(|e| {
            LabRunError::Environment(format!("cannot create a temporary directory: {e}"))
        })?;
        let advert_path = dir.path().join("adverts.sock");
        let settings = &self.scenario.virtual_phone;
        let mut config = PhoneConfig::new(server.base_url());
        config.sink = AdvertSinkSpec::Unix(advert_path.clone());
        config.attestation = match settings.attestation.as_deref() {
            Some("none") => AttestationMode::None,
            _ => AttestationMode::PackedTestCa,
        };
        if let Some(a) = settings.aaguid.as_deref().and_then(|a| a.parse::<Aaguid>().ok()) {
            config.aaguid = a.0;
        }
        config.backup_eligible = settings.backup_eligible;
        config.presence_delay = Duration::from_millis(settings.presence_delay_ms.unwrap_or(50));
        config.desktop_timeout = Duration::from_secs(30);
        config.idle_timeout = Duration::from_secs(30);
        let phone = VirtualPhone::new(config, PhoneState::new(&mut rand::rngs::OsRng), None, None);
        Ok(VirtualRig { server, phone, advert_path, dir })
    }

    /// Runs `repeat` iterations; `on_record` hears about each ceremony as it ends.
    pub async fn run(
        &self,
        repeat: u32,
        ctx: &RunContext,
        on_record: &mut (dyn FnMut(&Record) + Send),
    ) -> Result<RunOutput, LabRunError> {
        let mut rig = None;
        if self
            .steps
            .iter()
            .any(|s| s.transport == TransportName::Hybrid && s.phone == PhoneKind::Virtual)
        {
            rig = Some(self.virtual_rig().await?);
        }
        let mut records = Vec::new();
        let mut interrupted = false;
        'iterations: for iteration in 1..=repeat {
            let mut registered: HashMap<String, Registered> = HashMap::new();
            let mut latest: Option<Registered> = None;
            for (i, step) in self.steps.iter().enumerate() {
                if ctx.cancel.is_cancelled() {
                    interrupted = true;
                    break 'iterations;
                }
                let used = match (&step.credential_from, step.action) {
                    (Some(from), _) => registered.get(from).cloned(),
                    (None, Action::Authenticate) => latest.clone(),
                    (None, Action::Register) => None,
                };
                let record = self.one(iteration, i, step, used.as_ref(), rig.as_mut(), ctx).await?;
                on_record(&record.0);
                if let Some(reg) = record.1 {
                    registered.insert(step.name.clone(), reg.clone());
                    latest = Some(reg);
                }
                records.push(record.0);
            }
        }
        if let Some(rig) = rig {
            rig.server.shutdown().await;
            drop(rig.dir);
        }
        Ok(RunOutput { records, interrupted })
    }

    fn transport(
        &self,
        i: usize,
        step: &ResolvedStep,
        rig: Option<&VirtualRig>,
        ctx: &RunContext,
    ) -> Result<Transport, LabRunError> {
        let judge = &self.judges[i];
        if step.transport == TransportName::Usb {
            return Ok(Transport::Usb(UsbTransport {
                devices: self.devices[i].iter().cloned().collect(),
                timeout: step.timeout,
                aaguids: judge.table.clone(),
                ..Default::default()
            }));
        }
        let source = match (&self.adverts[i], rig) {
            (Some(s), _) => s.clone(),
            (None, Some(rig)) => AdvertSource::UnixDatagram(rig.advert_path.clone()),
            (None, None) => {
                return Err(LabRunError::Usage(format!("step {:?}: no advert source", step.name)))
            }
        };
        let mut config = DesktopConfig::new(source);
        config.tunnel_url = match rig {
            Some(rig) if step.phone == PhoneKind::Virtual => Some(rig.server.base_url()),
            _ => step.tunnel_url.clone(),
        };
        config.timeouts.advert = step.timeout;
        config.timeouts.connect = step.timeout;
        config.timeouts.handshake = step.timeout;
        config.timeouts.user = step.timeout;
        config.timeouts.late_updates = Duration::from_millis(200);
        config.aaguids = judge.table.clone();
        Ok(match (step.transport, &step.link) {
            (TransportName::Linked, Some(link)) => {
                let Some(dir) = &ctx.state_dir else {
                    return Err(LabRunError::Usage(format!(
                        "step {:?}: linked phones need a state directory",
                        step.name
                    )));
                };
                config.link_store = Some(LinkStore::in_dir(dir));
                Transport::Linked(LinkedTransport::new(link.clone(), config))
            }
            _ => Transport::Hybrid(HybridTransport::new(config)),
        })
    }

    async fn one(
        &self,
        iteration: u32,
        i: usize,
        step: &ResolvedStep,
        used: Option<&Registered>,
        rig: Option<&mut VirtualRig>,
        ctx: &RunContext,
    ) -> Result<(Record, Option<Registered>), LabRunError> {
        let request = match step.action {
            Action::Register => {
                CeremonyRequest::Register(RegisterOptions::new(&step.rp_id, &step.user_name))
            }
            Action::Authenticate => {
                let mut o = AuthenticateOptions::new(&step.rp_id);
                o.allow_credentials =
                    used.map(|r| vec![r.credential_id.clone()]).unwrap_or_default();
                CeremonyRequest::Authenticate(o)
            }
        };
        let virtual_phone =
            step.transport == TransportName::Hybrid && step.phone == PhoneKind::Virtual;
        let transport = self.transport(i, step, rig.as_deref(), ctx)?;
        let qr = Arc::clone(&ctx.qr);
        // The QR code is for a person only when a real phone has to scan it.
        let mut log = EventLog::forwarding(Box::new(move |e: &CeremonyEvent| match e {
            CeremonyEvent::Qr { url } if !virtual_phone => qr(url),
            _ => {}
        }));
        let started = Instant::now();
        let result = match rig {
            Some(rig) if virtual_phone => {
                let phone = &mut rig.phone;
                let cancel = ctx.cancel.clone();
                crate::testkit::with_phone_cancel(
                    transport,
                    request,
                    &mut log,
                    cancel,
                    |qr| async move { phone.run_qr(&qr).await },
                )
                .await
                .0
            }
            _ => crate::ceremony::run(transport, request, log.sink(), ctx.cancel.clone()).await,
        };
        let total_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(self.record(iteration, i, step, used, &log, result, total_ms, virtual_phone))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        iteration: u32,
        i: usize,
        step: &ResolvedStep,
        used: Option<&Registered>,
        log: &EventLog,
        result: Result<CeremonyOutcome, CeremonyError>,
        total_ms: u64,
        virtual_phone: bool,
    ) -> (Record, Option<Registered>) {
        let judge = &self.judges[i];
        let mut timings_ms = std::collections::BTreeMap::new();
        let mut device = step.device.clone();
        for e in log.events() {
            let CeremonyEvent::Progress(p) = e else { continue };
            *timings_ms.entry(p.stage.as_str().to_owned()).or_insert(0) += p.stage_ms;
            match p.detail {
                ProgressDetail::Text(t)
                    if p.stage == crate::ceremony::CeremonyStage::DeviceSelect =>
                {
                    device = Some(t);
                }
                ProgressDetail::Advert { tunnel_host, .. } if !virtual_phone => {
                    device = Some(format!("phone via {tunnel_host}"));
                }
                _ => {}
            }
        }
        if virtual_phone {
            device = Some("cablebridge virtual phone".to_owned());
        } else if let Some(link) = &step.link {
            device = Some(format!("linked phone {link}"));
        }
        let mut registered = None;
        let (mut aaguid, mut name) = (used.map(|r| r.aaguid), used.and_then(|r| r.name.clone()));
        let (outcome, failure_stage, error, policy) = match &result {
            Ok(CeremonyOutcome::Registered(reg)) => {
                aaguid = Some(reg.aaguid);
                name.clone_from(&reg.authenticator_name);
                registered = Some(Registered {
                    credential_id: reg.credential_id.clone(),
                    aaguid: reg.aaguid,
                    name: reg.authenticator_name.clone(),
                });
                let policy = field(judge.registration_fields(reg), "policy");
                ("success", None, None, policy)
            }
            Ok(CeremonyOutcome::Authenticated(auth)) => {
                let policy = field(judge.authentication_fields(auth, aaguid), "policy");
                ("success", None, None, policy)
            }
            Err(e) => ("error", Some(e.stage.as_str().to_owned()), Some(e.message.clone()), None),
        };
        let verdict = policy.as_ref().and_then(|p| p["verdict"].as_str().map(str::to_owned));
        let detail = expectation(step, outcome, failure_stage.as_deref(), verdict.as_deref());
        let record = Record {
            iteration,
            step: step.name.clone(),
            action: step.action.as_str().to_owned(),
            transport: step.transport.as_str().to_owned(),
            device,
            aaguid: aaguid.map(|a| a.to_string()),
            authenticator_name: name,
            timings_ms,
            total_ms,
            outcome: outcome.to_owned(),
            failure_stage,
            error,
            policy,
            expect: step.expect.as_str().to_owned(),
            expectation_met: detail.is_none(),
            expectation_detail: detail,
        };
        (record, registered)
    }
}

fn field(fields: Vec<(&'static str, serde_json::Value)>, name: &str) -> Option<serde_json::Value> {
    fields.into_iter().find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// `None` when the step's expectation was met, else why not.
fn expectation(
    step: &ResolvedStep,
    outcome: &str,
    failure_stage: Option<&str>,
    verdict: Option<&str>,
) -> Option<String> {
    let stage = failure_stage.unwrap_or("-");
    match step.expect {
        Expect::Success if outcome == "success" => None,
        Expect::Success => Some(format!("expected success, failed at stage {stage}")),
        Expect::Error if outcome == "success" => Some(match &step.expect_stage {
            Some(s) => format!("expected an error at stage {s}, the ceremony succeeded"),
            None => "expected an error, the ceremony succeeded".to_owned(),
        }),
        Expect::Error => match &step.expect_stage {
            Some(s) if s != stage => {
                Some(format!("expected an error at stage {s}, failed at stage {stage}"))
            }
            _ => None,
        },
        Expect::Accept | Expect::Reject => {
            let want = step.expect.as_str();
            if outcome != "success" {
                Some(format!(
                    "expected policy verdict {want}, the ceremony failed at stage {stage}"
                ))
            } else {
                match verdict {
                    Some(v) if v == want => None,
                    Some(v) => Some(format!("expected policy verdict {want}, got {v}")),
                    None => {
                        Some(format!("expected policy verdict {want}, but the step has no policy"))
                    }
                }
            }
        }
    }
}
