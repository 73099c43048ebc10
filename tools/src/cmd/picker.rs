//! The interactive account picker of `authenticate`: when a security key holds several
//! discoverable credentials for the RP and neither `--pick N` nor `--json` is given, and both
//! standard input and standard error are terminals, the user chooses one from a numbered list
//! (user name, display name, user handle and credential id prefixes), as a browser's account
//! chooser does. A bad answer re-prompts; end of input (Ctrl-D) or Ctrl-C cancels with the
//! ceremony's usual cancel exit code (1).
//!
//! The key has already answered every assertion (getAssertion + getNextAssertion, each signed
//! over the same client data), so picking only chooses which one the result reports
//! ([`AuthenticationResult::pick`]); nothing more is asked of the key. The picker needs this
//! terminal, so it runs the ceremony in this process (through the daemon, `--pick` and the
//! `credentials` list are the ways to choose).

use std::io::{IsTerminal, Write};

use cablebridged::ceremony::{
    b64url, AuthenticationResult, CeremonyError, CeremonyRequest, CeremonyStage,
};
use tokio_util::sync::CancellationToken;

/// Whether an `authenticate` with these options, on a USB key, should ask on the terminal.
pub fn applies(request: &CeremonyRequest, usb: bool, json: bool) -> bool {
    let CeremonyRequest::Authenticate(options) = request else { return false };
    usb && !json
        && options.pick.is_none()
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

fn prefix(bytes: &[u8]) -> String {
    let text = b64url(bytes);
    match text.char_indices().nth(12) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The numbered list, one line per candidate.
pub fn listing(result: &AuthenticationResult) -> String {
    let mut out =
        format!("Several credentials for {} are on this key; which account?\n", result.rp_id);
    for (i, c) in result.candidates.iter().enumerate() {
        let name = c.user_name.as_deref().unwrap_or("(name not shown without UV)");
        let display = c.display_name.as_deref().map(|d| format!(" \"{d}\"")).unwrap_or_default();
        let user = c.user_handle.as_deref().map(prefix).unwrap_or_else(|| "-".to_owned());
        out.push_str(&format!(
            "  {}) {name}{display}  user {user}  id {}\n",
            i + 1,
            prefix(&c.credential_id)
        ));
    }
    out
}

/// Asks until a valid number arrives; EOF or `cancel` (Ctrl-C) → a cancelled ceremony.
pub async fn pick(
    result: &mut AuthenticationResult,
    cancel: &CancellationToken,
) -> Result<(), CeremonyError> {
    let count = result.candidates.len();
    let mut err = std::io::stderr();
    let _ = err.write_all(listing(result).as_bytes());
    // A plain thread: a blocking stdin read must never hold up the runtime's shutdown.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let _ = write!(err, "Pick an account [1-{count}]: ");
        let _ = err.flush();
        let line = tokio::select! {
            line = rx.recv() => line,
            _ = cancel.cancelled() => None,
        };
        let Some(line) = line else {
            let _ = writeln!(err);
            return Err(CeremonyError::cancelled(CeremonyStage::UserResponse));
        };
        match line.trim().parse::<usize>() {
            Ok(n) if result.pick(n) => return Ok(()),
            _ => {
                let _ = writeln!(err, "  please type a number from 1 to {count}");
            }
        }
    }
}
