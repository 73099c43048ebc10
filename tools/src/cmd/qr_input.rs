//! Where `phone` and `bridge` get the desktop's `FIDO:/` URL: `--qr URL`, `--qr -` (standard
//! input) or `--qr-file PATH`.
//!
//! The URL carries the session's QR secret (and the desktop's public key): whoever holds it
//! during the session can derive the tunnel id and the advert key. A command-line argument is
//! readable by every local user through `/proc/PID/cmdline` (and lands in shell history), so
//! the README recommends stdin or a file (mode 0600). Input read here is bounded in size and
//! wiped from memory after parsing; the parsed secret lives in its own zeroizing type.

use crate::output::CmdError;
use cablebridge_protocol::hybrid::qr::QrPayload;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Most bytes read from stdin or a file: a `FIDO:/` URL is a few hundred characters.
pub const MAX_QR_INPUT: u64 = 16 * 1024;

/// The `--qr` value that means "read the URL from standard input".
pub const STDIN: &str = "-";

fn read_bounded(mut from: impl Read, what: &str) -> Result<Zeroizing<Vec<u8>>, CmdError> {
    let mut buf = Zeroizing::new(Vec::new());
    from.by_ref().take(MAX_QR_INPUT + 1).read_to_end(&mut buf).map_err(|e| {
        CmdError::environment(format!("cannot read the FIDO:/ URL from {what}: {e}"))
    })?;
    if buf.len() as u64 > MAX_QR_INPUT {
        return Err(CmdError::usage(format!(
            "{what} holds more than {MAX_QR_INPUT} bytes; expected one FIDO:/ URL"
        )));
    }
    Ok(buf)
}

fn parse(buf: &[u8], what: &str) -> Result<QrPayload, CmdError> {
    let text = std::str::from_utf8(buf)
        .map_err(|_| CmdError::usage(format!("{what} is not UTF-8 text; expected a FIDO:/ URL")))?;
    if text.trim().is_empty() {
        return Err(CmdError::usage(format!("no FIDO:/ URL in {what}")));
    }
    crate::cmd::parse_qr_url(text)
}

/// The QR from `--qr` (a URL, or `-` for stdin) or `--qr-file`; `None` if neither was given.
pub fn read_qr(qr: Option<&str>, qr_file: Option<&Path>) -> Result<Option<QrPayload>, CmdError> {
    match (qr, qr_file) {
        (Some(_), Some(_)) => Err(CmdError::usage("give --qr or --qr-file, not both")),
        (Some(STDIN), None) => {
            let buf = read_bounded(std::io::stdin().lock(), "standard input")?;
            parse(&buf, "standard input").map(Some)
        }
        (Some(url), None) => crate::cmd::parse_qr_url(url).map(Some),
        (None, Some(path)) => {
            let what = format!("--qr-file {}", path.display());
            let file = std::fs::File::open(path).map_err(|e| {
                CmdError::environment(format!("cannot read the FIDO:/ URL from {what}: {e}"))
            })?;
            let buf = read_bounded(file, &what)?;
            parse(&buf, &what).map(Some)
        }
        (None, None) => Ok(None),
    }
}
