//! Shared plumbing of the security-key subcommands (`devices`, `info`, `wink`, `pin`, `reset`,
//! `credentials`): a tokio runtime, device choice (explicit `--device` or touch-to-select), the
//! Ctrl-C → CANCEL wiring, PIN input (TTY prompt, `--pin-stdin`, `CABLEBRIDGE_PIN` /
//! `CABLEBRIDGE_NEW_PIN`; never a plain flag) and the mapping of [`CtapError`] to exit codes.
//! The work itself is in `cablebridged::ctap`.

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use cablebridge_protocol::ctap2::pin::Pin;
use cablebridge_protocol::error::Classify;
use cablebridged::ctap::{
    open_client, select_attached, select_device, Call, Ctap2Client, CtapError, DeviceProgress,
    KeyArrivals, OpenOptions,
};
use cablebridged::hid::{DeviceAddress, HidDevice};
use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::output::{CmdError, Exit};

/// Which key and how long to wait.
#[derive(Debug, Args, Clone)]
pub struct DeviceArgs {
    /// The key: /dev/hidrawN or udp:HOST:PORT. Repeat to choose among several by touch;
    /// omitted: every attached FIDO key (touch the one to use when there are several), and
    /// with none attached, "insert your security key" and wait (up to --timeout, or Ctrl-C)
    /// for one to be plugged in (kernel hot-plug events; where those are unavailable, e.g. in
    /// a container, it fails at once and says why).
    #[arg(long, short = 'd')]
    pub device: Vec<String>,
    /// Seconds to wait for the key (plugging it in and the touch included) before giving up
    /// (CANCEL is sent to a key mid-command).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// PIN input options.
#[derive(Debug, Args, Clone)]
pub struct PinArgs {
    /// Read the PIN(s) from standard input, one per line (else CABLEBRIDGE_PIN, else a prompt).
    #[arg(long)]
    pub pin_stdin: bool,
}

/// Runs an async command body on a fresh runtime with Ctrl-C wired to `cancel`.
///
/// When the body is done the runtime is shut down without waiting for blocking threads: a
/// thread stuck in a blocking read (a feed that stays open) must never keep the command from
/// printing its result and exiting.
pub fn block_on<F, T>(body: impl FnOnce(CancellationToken) -> F) -> Result<T, CmdError>
where
    F: std::future::Future<Output = Result<T, CmdError>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CmdError::environment(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        // The SIGINT handler is installed here, before the body runs. `tokio::signal::ctrl_c()`
        // would install it only when the spawned task is first polled, and on a loaded machine
        // a Ctrl-C right after the QR code appeared could arrive before that and kill the
        // process with no error line (seen in CI: ceremony_live::ctrl_c_while_waiting_for_the_advert).
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| CmdError::environment(format!("cannot listen for Ctrl-C: {e}")))?;
        tokio::spawn(async move {
            if interrupt.recv().await.is_some() {
                on_ctrl_c.cancel();
            }
        });
        body(cancel).await
    });
    runtime.shutdown_background();
    result
}

/// Prints the key's status to stderr (keepalive: "touch your key"), once per change.
pub fn progress_printer() -> impl FnMut(DeviceProgress) + Send {
    let mut last = None;
    move |p| {
        if last == Some(p) {
            return;
        }
        last = Some(p);
        match p {
            DeviceProgress::TouchNeeded => eprintln!("cablebridge: touch your security key"),
            DeviceProgress::InsertKey => eprintln!("cablebridge: insert your security key"),
            DeviceProgress::BusyRetry { attempt: 1 } => {
                eprintln!("cablebridge: the key is busy with another client; retrying")
            }
            _ => {}
        }
    }
}

/// Builds a call for `args.timeout`.
pub fn deadline(args: &DeviceArgs) -> Instant {
    Instant::now() + Duration::from_secs(args.timeout.max(1))
}

/// Maps a key error to the CLI's exit codes: environment 3, caller 2, everything the key or
/// user did (timeouts, cancel, statuses) 1. The stage is attached for `--json`.
pub fn key_error(e: CtapError) -> CmdError {
    CmdError { exit: Exit::from(&e), message: e.to_string(), stage: None }.at(e.stage())
}

fn parse_addresses(args: &DeviceArgs) -> Result<Vec<DeviceAddress>, CmdError> {
    args.device
        .iter()
        .map(|d| d.parse::<DeviceAddress>().map_err(|e| CmdError::usage(e.to_string())))
        .collect()
}

/// Opens the key the user means: the one `--device`, touch-to-select among several, or the
/// attached hidraw keys (waiting for one to be plugged in when there are none).
pub async fn choose(
    args: &DeviceArgs,
    cancel: &CancellationToken,
) -> Result<Ctap2Client<HidDevice>, CmdError> {
    let options = OpenOptions::default();
    let mut printer = progress_printer();
    let mut call = Call { deadline: deadline(args), cancel, progress: &mut printer };
    let addresses = parse_addresses(args)?;
    if let [one] = addresses.as_slice() {
        return open_client(one, &options, &mut call).await.map_err(key_error);
    }
    if addresses.is_empty() {
        let arrivals = KeyArrivals::kernel(&options.hidraw.roots);
        return select_attached(&options, arrivals, &mut call).await.map_err(key_error);
    }
    select_device(&addresses, &options, &mut call, None).await.map_err(key_error)
}

/// Where PINs come from.
#[derive(Debug)]
pub struct PinSource {
    stdin: bool,
}

impl PinSource {
    /// From the flags.
    pub fn new(args: &PinArgs) -> Self {
        PinSource { stdin: args.pin_stdin }
    }

    /// The next PIN: `env` variable, else a stdin line (`--pin-stdin`), else a TTY prompt.
    /// `None` when none is available (no env, no flag, stdin not a terminal).
    pub fn read(&self, env: &str, prompt: &str) -> Result<Option<String>, CmdError> {
        if let Ok(pin) = std::env::var(env) {
            return Ok(Some(pin));
        }
        if self.stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                CmdError::environment(format!("cannot read the PIN from stdin: {e}"))
            })?;
            let pin = line.trim_end_matches(['\r', '\n']).to_owned();
            return Ok((!pin.is_empty()).then_some(pin));
        }
        if std::io::stdin().is_terminal() {
            let pin = rpassword::prompt_password(prompt)
                .map_err(|e| CmdError::environment(format!("cannot prompt for the PIN: {e}")))?;
            return Ok(Some(pin));
        }
        Ok(None)
    }

    /// Whether PINs come from the TTY prompt (no flag, stdin is a terminal).
    pub fn is_prompt(&self) -> bool {
        !self.stdin && std::io::stdin().is_terminal()
    }

    /// A PIN, or `None`. A new PIN (`CABLEBRIDGE_NEW_PIN`) is validated against the key's
    /// minimum length; the current one only against the CTAP rules, since after
    /// `config set-min-pin-length` it may be shorter than the new minimum (and must still be
    /// given to change it).
    pub fn pin_for<T: cablebridged::hid::HidTransport>(
        &self,
        client: &Ctap2Client<T>,
        env: &str,
        prompt: &str,
    ) -> Result<Option<Pin>, CmdError> {
        match self.read(env, prompt)? {
            Some(text) if env == "CABLEBRIDGE_NEW_PIN" => {
                client.check_pin(&text).map(Some).map_err(key_error)
            }
            Some(text) => Pin::new(&text)
                .map(Some)
                .map_err(|e| key_error(cablebridged::ctap::CtapError::InvalidPin(e))),
            None => Ok(None),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// `register|authenticate --transport usb` flags.
#[derive(Debug, Args, Clone)]
pub struct UsbCeremonyArgs {
    /// With --transport usb: the key (/dev/hidrawN or udp:HOST:PORT); repeat to choose by
    /// touch; omitted: every attached key, and with none attached, "insert your security key"
    /// and wait (within the ceremony timeout, or Ctrl-C) for one to be plugged in (kernel
    /// hot-plug events; unavailable, e.g. in a container: fails at once saying why).
    #[arg(long, short = 'd', value_name = "DEVICE")]
    pub device: Vec<String>,
    /// With --transport usb: read the key's PIN from stdin (else CABLEBRIDGE_PIN).
    #[arg(long)]
    pub pin_stdin: bool,
}

/// The PIN of a `--transport usb` ceremony: `CABLEBRIDGE_PIN`, else a stdin line with
/// `--pin-stdin`, checked (length, characters) before any key or daemon is asked. No TTY prompt
/// here: most keys need no PIN, and the error says how to give one. The text is wiped on drop;
/// the daemon path forwards it as the `pin` param over the peer-checked local socket.
pub fn ceremony_pin(u: &UsbCeremonyArgs) -> Result<Option<zeroize::Zeroizing<String>>, CmdError> {
    let source = PinSource { stdin: u.pin_stdin };
    let pin = match std::env::var("CABLEBRIDGE_PIN").ok() {
        Some(p) => Some(p),
        None if u.pin_stdin => source.read("CABLEBRIDGE_PIN", "PIN: ")?,
        None => None,
    };
    let pin = pin.map(zeroize::Zeroizing::new);
    if let Some(p) = &pin {
        Pin::new(p).map_err(|e| CmdError::usage(format!("invalid PIN: {e}")))?;
    }
    Ok(pin)
}

/// `Transport::Usb` from the ceremony flags: keys, the ceremony timeout, the PIN (from
/// [`ceremony_pin`]).
pub fn usb_transport(
    c: &crate::cmd::ceremony::CeremonyArgs,
    u: &UsbCeremonyArgs,
    pin: Option<&str>,
) -> Result<cablebridged::ceremony::UsbTransport, CmdError> {
    let devices = parse_addresses(&DeviceArgs { device: u.device.clone(), timeout: 0 })?;
    let pin =
        pin.map(Pin::new).transpose().map_err(|e| CmdError::usage(format!("invalid PIN: {e}")))?;
    Ok(cablebridged::ceremony::UsbTransport {
        devices,
        timeout: c.user_timeout,
        pin,
        open: OpenOptions::default(),
        aaguids: Default::default(),
    })
}
