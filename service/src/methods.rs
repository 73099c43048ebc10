//! Method dispatch of the control API (docs/api.md documents each): `version`, `status`,
//! `devices.list`, `device.info`, `links.list`, `links.forget`, `ceremony.register`,
//! `ceremony.authenticate`, `ceremony.cancel`, `events.subscribe`, `doctor.run`, `runs.list`,
//! `runs.show`, `runs.compare`, `bridge.start`, `bridge.stop`, `runs.start`, `ceremony.present`.
//!
//! A method returns its `result` value, or an [`RpcError`]; methods that start a stream also
//! hand back a [`Stream`] the connection forwards as notifications *after* sending the result.

use std::sync::Arc;
use std::time::Duration;

use std::path::Path;

use cablebridged::doctor::{self, DoctorOptions, ResolveOverride};
use cablebridged::hid::DeviceAddress;
use cablebridged::labrun::{LabRunError, RunStore};
use cablebridged::policy::SelectedPolicy;
use cablebridged::store::{display_name, LinkLookup, LinkStore};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::ceremony::{self, Kind};
use crate::rpc::{code, Params, Request, RpcError, API_VERSION};
use crate::server::Daemon;

/// Every method this build answers.
pub const METHODS: [&str; 19] = [
    "version",
    "status",
    "devices.list",
    "device.info",
    "links.list",
    "links.forget",
    "ceremony.register",
    "ceremony.authenticate",
    "ceremony.cancel",
    "events.subscribe",
    "doctor.run",
    "runs.list",
    "runs.show",
    "runs.compare",
    "bridge.uhid",
    "bridge.start",
    "bridge.stop",
    "runs.start",
    "ceremony.present",
];

/// Notifications to forward to the caller once the result is sent.
#[derive(Debug)]
pub struct Stream(pub broadcast::Receiver<Arc<Value>>);

/// Runs one request for connection `conn` (whose closing cancels `conn_closed`).
pub async fn dispatch(
    daemon: &Arc<Daemon>,
    conn: u64,
    conn_closed: &CancellationToken,
    request: Request,
) -> Result<(Value, Option<Stream>), RpcError> {
    let mut p = Params::new(request.params);
    let plain = |v: Value| Ok((v, None));
    match request.method.as_str() {
        "version" => {
            p.finish()?;
            plain(version())
        }
        "status" => {
            p.finish()?;
            plain(daemon.status())
        }
        "devices.list" => {
            let extra = addresses(&mut p, "devices")?;
            let probe = p.opt_duration("probe_timeout")?.unwrap_or(Duration::from_millis(1500));
            p.finish()?;
            plain(crate::devices::list(extra, probe, conn_closed).await)
        }
        "device.info" => {
            let device = p.string("device")?;
            let address =
                device.parse::<DeviceAddress>().map_err(|e| RpcError::param("device", e))?;
            let timeout = p.opt_duration("timeout")?.unwrap_or(Duration::from_secs(5));
            p.finish()?;
            plain(crate::devices::info(&address, timeout, conn_closed).await?)
        }
        "links.list" => {
            p.finish()?;
            let store = LinkStore::in_dir(&daemon.config.state_dir);
            let links =
                store.load().map_err(|e| RpcError::new(code::ENVIRONMENT, e.to_string()))?;
            let summaries: Vec<Value> = links.iter().map(|l| l.summary()).collect();
            plain(json!({"store": store.path().display().to_string(), "links": summaries}))
        }
        "links.forget" => {
            let name = p.string("name_or_id")?;
            p.finish()?;
            let store = LinkStore::in_dir(&daemon.config.state_dir);
            match store
                .forget(&name)
                .map_err(|e| RpcError::new(code::ENVIRONMENT, e.to_string()))?
            {
                LinkLookup::Found(l) => plain(json!({"forgotten": l.summary()})),
                LinkLookup::NotFound => Err(RpcError {
                    code: code::REFUSED,
                    message: format!(
                        "no linked phone named {} (see links.list)",
                        display_name(&name)
                    ),
                    data: Some(json!({"field": "name_or_id"})),
                }),
                LinkLookup::Ambiguous(ids) => Err(RpcError {
                    code: code::REFUSED,
                    message: format!(
                        "{} matches several linked phones; name one by id: {}",
                        display_name(&name),
                        ids.join(", ")
                    ),
                    data: Some(json!({"field": "name_or_id", "candidates": ids})),
                }),
            }
        }
        "ceremony.register" | "ceremony.authenticate" => {
            let kind = if request.method == "ceremony.register" {
                Kind::Register
            } else {
                Kind::Authenticate
            };
            let spec = ceremony::parse(kind, &mut p, &daemon.config)?;
            p.finish()?;
            let (session, rx) = daemon.registry.start(spec, conn)?;
            Ok((
                json!({"session": session.id, "transport": session.transport, "detached": session.detached}),
                Some(Stream(rx)),
            ))
        }
        "ceremony.cancel" => {
            let id = p.u64("session")?;
            p.finish()?;
            if daemon.registry.cancel(id) {
                plain(json!({"session": id, "cancelled": true}))
            } else {
                Err(no_such_session(id))
            }
        }
        "events.subscribe" => {
            let id = p.opt_u64("session")?;
            p.finish()?;
            match id {
                None => Ok((
                    json!({"subscribed": "all"}),
                    Some(Stream(daemon.registry.subscribe_all())),
                )),
                Some(id) => match daemon.registry.get(id) {
                    Some(s) => Ok((json!({"subscribed": id}), Some(Stream(s.subscribe())))),
                    None => Err(no_such_session(id)),
                },
            }
        }
        "doctor.run" => {
            let opts = doctor_options(&mut p, daemon)?;
            p.finish()?;
            // Spawned: a resolver thread stuck in getaddrinfo or a slow scan must not hold the
            // connection task; every step inside is bounded by step_timeout / the scan window.
            let report = tokio::spawn(async move { doctor::run(&opts).await })
                .await
                .map_err(|e| RpcError::new(code::INTERNAL_ERROR, format!("doctor: {e}")))?;
            plain(report.to_json())
        }
        "runs.list" => {
            p.finish()?;
            plain(
                runs(daemon, |store| {
                    let runs = store.list().map_err(|e| lab_error(e, "params"))?;
                    Ok(json!({"runs": to_value(&runs)?}))
                })
                .await?,
            )
        }
        "runs.show" => {
            let id = run_id(&mut p, "id")?;
            p.finish()?;
            plain(
                runs(daemon, move |store| {
                    let (run, records) = store.get(id).map_err(|e| lab_error(e, "id"))?;
                    Ok(json!({"run": to_value(&run)?, "records": to_value(&records)?}))
                })
                .await?,
            )
        }
        "runs.compare" => {
            let a = run_id(&mut p, "a")?;
            let b = run_id(&mut p, "b")?;
            p.finish()?;
            plain(
                runs(daemon, move |store| {
                    // Each id on its own first, so a missing run names its parameter.
                    store.get(a).map_err(|e| lab_error(e, "a"))?;
                    store.get(b).map_err(|e| lab_error(e, "b"))?;
                    let c = store.compare(a, b).map_err(|e| lab_error(e, "params"))?;
                    Ok(json!({"comparison": to_value(&c)?}))
                })
                .await?,
            )
        }
        "bridge.uhid" => {
            let action = p.opt_string("action")?.unwrap_or_else(|| "status".to_owned());
            let front = p
                .opt_string("front")?
                .map(|f| match f.as_str() {
                    "uhid" => Ok(match &daemon.config.uhid.front {
                        k @ crate::uhid::UhidFront::Kernel(_) => k.clone(),
                        crate::uhid::UhidFront::Udp(_) => {
                            crate::uhid::UhidFront::Kernel(std::path::PathBuf::from("/dev/uhid"))
                        }
                    }),
                    other => crate::uhid::parse_udp(other)
                        .map(crate::uhid::UhidFront::Udp)
                        .map_err(|m| RpcError::param("front", m)),
                })
                .transpose()?;
            p.finish()?;
            match action.as_str() {
                "start" => plain(daemon.uhid.start(&daemon.config, &daemon.registry, front).await?),
                "stop" => plain(daemon.uhid.stop().await),
                "status" => plain(daemon.uhid.status()),
                other => Err(RpcError::param(
                    "action",
                    format!("{other:?} is not start, stop or status"),
                )),
            }
        }
        "bridge.start" => {
            let spec = crate::bridge::parse(&mut p, &daemon.config)?;
            p.finish()?;
            let kind = spec.kind_str();
            let controls = Arc::clone(&daemon.bridges);
            let (session, rx) = daemon.registry.spawn(
                "bridge",
                kind,
                spec.detach,
                conn,
                move |registry, session| crate::bridge::run(registry, session, spec, controls),
            )?;
            Ok((
                json!({"session": session.id, "kind": kind, "detached": session.detached}),
                Some(Stream(rx)),
            ))
        }
        "ceremony.present" => {
            let spec = crate::present::parse(&mut p, &daemon.config)?;
            p.finish()?;
            let kind = spec.kind_str();
            let (session, rx) =
                daemon.registry.spawn("present", "hybrid", spec.detach, conn, move |r, s| {
                    crate::present::run(r, s, spec)
                })?;
            Ok((
                json!({"session": session.id, "kind": kind, "transport": "hybrid", "detached": session.detached}),
                Some(Stream(rx)),
            ))
        }
        "runs.start" => {
            let spec = crate::labruns::parse(&mut p, &daemon.config)?;
            p.finish()?;
            let state_dir = daemon.config.state_dir.clone();
            let detach = spec.detach;
            let (session, rx) =
                daemon.registry.spawn("run", "lab", detach, conn, move |registry, session| {
                    crate::labruns::run(registry, session, spec, state_dir)
                })?;
            Ok((json!({"session": session.id, "detached": session.detached}), Some(Stream(rx))))
        }
        "bridge.stop" => {
            let id = p.u64("session")?;
            let revoke = p.opt_bool("revoke_links")?.unwrap_or(false);
            p.finish()?;
            match daemon.registry.get(id) {
                Some(s) if s.kind == "bridge" => {
                    if revoke {
                        daemon.bridges.request_revoke(id);
                    }
                    daemon.registry.cancel(id);
                    let mut answer = json!({"session": id, "stopped": true});
                    if revoke {
                        answer["revoke_links"] = json!(true);
                    }
                    plain(answer)
                }
                Some(_) => Err(RpcError::param("session", "is a ceremony: use ceremony.cancel")),
                None => Err(no_such_session(id)),
            }
        }
        other => Err(RpcError::new(code::METHOD_NOT_FOUND, format!("method not found: {other:?}"))),
    }
}

/// `doctor.run`'s params, the CLI's `doctor` flags in snake_case; bad files name the field.
fn doctor_options(p: &mut Params, daemon: &Daemon) -> Result<DoctorOptions, RpcError> {
    let mut opts =
        DoctorOptions { control_socket: daemon.config.socket.clone(), ..DoctorOptions::default() };
    // `uhid.permissions` when the uhid front is on (issue 11).
    if let (true, crate::uhid::UhidFront::Kernel(path)) =
        (daemon.config.uhid.enabled, &daemon.config.uhid.front)
    {
        opts.uhid_device = Some(path.clone());
    }
    if let Some(n) = p.opt_u64("scan_seconds")? {
        opts.scan_window = Duration::from_secs(n);
    }
    if let Some(t) = p.opt_duration("step_timeout")? {
        if t.is_zero() {
            return Err(RpcError::param("step_timeout", "must be more than zero"));
        }
        opts.step_timeout = t;
    }
    opts.extra_tunnel_hosts = p.strings("tunnel_host")?;
    opts.resolve = p
        .strings("resolve")?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.parse::<ResolveOverride>().map_err(|e| RpcError::param(&format!("resolve[{i}]"), e))
        })
        .collect::<Result<_, _>>()?;
    let probed: Vec<String> = doctor::network::hosts(&opts).into_iter().map(|(h, _)| h).collect();
    if let Some((i, r)) = opts.resolve.iter().enumerate().find(|(_, r)| !probed.contains(&r.host)) {
        return Err(RpcError::param(
            &format!("resolve[{i}]"),
            format!("names {}, which is not probed (add it to tunnel_host)", r.host),
        ));
    }
    if let Some(path) = p.opt_string("ca_file")? {
        opts.tls_roots = Some(
            DoctorOptions::load_ca_file(Path::new(&path))
                .map_err(|e| RpcError::param("ca_file", e))?,
        );
    }
    let profile = p.opt_string("profile")?;
    let registered = p.opt_string("registered")?;
    match p.opt_string("policy")? {
        Some(path) => {
            opts.policy = Some(
                SelectedPolicy::load(Path::new(&path), profile.as_deref())
                    .map_err(|e| RpcError::param("policy", e))?,
            );
            if let Some(path) = registered {
                opts.registered = Some(
                    doctor::policy::read_registered(Path::new(&path))
                        .map_err(|e| RpcError::param("registered", e))?,
                );
            }
        }
        None => {
            if profile.is_some() {
                return Err(RpcError::param("profile", "requires policy"));
            }
            if registered.is_some() {
                return Err(RpcError::param("registered", "requires policy"));
            }
        }
    }
    Ok(opts)
}

/// Runs `f` on the lab-run store in the daemon's state dir, off the async threads (SQLite).
async fn runs(
    daemon: &Daemon,
    f: impl FnOnce(&RunStore) -> Result<Value, RpcError> + Send + 'static,
) -> Result<Value, RpcError> {
    let dir = daemon.config.state_dir.clone();
    tokio::task::spawn_blocking(move || {
        let store = RunStore::open_in(&dir).map_err(|e| lab_error(e, "params"))?;
        f(&store)
    })
    .await
    .map_err(|e| RpcError::new(code::INTERNAL_ERROR, format!("runs: {e}")))?
}

fn run_id(p: &mut Params, field: &str) -> Result<i64, RpcError> {
    i64::try_from(p.u64(field)?).map_err(|_| RpcError::param(field, "too large"))
}

fn to_value(v: &impl serde::Serialize) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::new(code::INTERNAL_ERROR, e.to_string()))
}

/// A store error: no such run is refused naming `field`; a broken store is the environment.
fn lab_error(e: LabRunError, field: &str) -> RpcError {
    match e {
        LabRunError::NotFound(m) => {
            RpcError { code: code::REFUSED, message: m, data: Some(json!({"field": field})) }
        }
        LabRunError::Usage(m) => RpcError::param(field, m),
        other => RpcError::new(code::ENVIRONMENT, other.to_string()),
    }
}

fn no_such_session(id: u64) -> RpcError {
    RpcError {
        code: code::NO_SUCH_SESSION,
        message: format!("no running session {id}"),
        data: Some(json!({"field": "session"})),
    }
}

fn addresses(p: &mut Params, field: &str) -> Result<Vec<DeviceAddress>, RpcError> {
    p.strings(field)?
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.parse::<DeviceAddress>().map_err(|e| RpcError::param(&format!("{field}[{i}]"), e))
        })
        .collect()
}

/// `version`'s result.
pub fn version() -> Value {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    json!({
        "api_version": API_VERSION,
        "daemon": "cablebridged",
        "version": env!("CARGO_PKG_VERSION"),
        "build": format!("{} ({profile}, {}-{})", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH, std::env::consts::OS),
        "methods": METHODS,
    })
}
