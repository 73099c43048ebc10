//! The interactive account picker through a real pseudo-terminal: `script` (util-linux) runs
//! `cablebridge authenticate` with a pty as its stdin/stdout/stderr, we type into it. Several
//! discoverable credentials on the virtual key → a numbered list, a bad answer re-prompts, the
//! chosen number is the credential that signs; Ctrl-D (EOF) and Ctrl-C cancel with exit 1.
//! Skipped (with a note) where `script` is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use cablebridged::virtual_key::VirtualKeyHandle;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const T: Duration = Duration::from_secs(30);

fn have_script() -> bool {
    std::process::Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success())
}

async fn json_cli(args: &[&str]) -> Value {
    let mut c = common::json_command(args);
    c.arg("--no-daemon");
    common::last_json(&common::run_expecting(c, args, 0).await.0)
}

/// A key holding two discoverable credentials for example.com; returns it and its address.
async fn key_with_two_accounts() -> (VirtualKeyHandle, String) {
    let key = common::virtual_key().await;
    let d = key.device_address();
    for user in ["alice", "bob"] {
        let mut args = common::register_args(&d, "example.com", user);
        args.extend(["--resident-key", "required"]);
        json_cli(&args).await;
    }
    (key, d)
}

struct Tty {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    seen: String,
}

impl Tty {
    /// `cablebridge authenticate` on a pty (script -q: no banner, -e: its exit code,
    /// -f: flush at once, /dev/null: no typescript file).
    fn authenticate(device: &str) -> Tty {
        let bin = env!("CARGO_BIN_EXE_cablebridge").replace('\'', r"'\''");
        // `exec`: the shell `script` starts must not stay between the tty and us. dash (the
        // /bin/sh `script` uses when $SHELL is unset) waits on its child and dies of the
        // tty's SIGINT itself, which `script -e` then reports as 130 whatever we exit with.
        let cmd = format!(
            "exec '{bin}' authenticate --transport usb --device {device} --rp-id example.com \
             --no-daemon"
        );
        let mut child = Command::new("script")
            .args(["-qefc", &cmd, "/dev/null"])
            .env_remove("CABLEBRIDGE_PIN")
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        Tty { child, stdin, stdout, seen: String::new() }
    }

    /// Reads until `needle` has appeared (after what was already consumed); returns the text.
    async fn expect(&mut self, needle: &str) -> String {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(T, async {
            while !self.seen.contains(needle) {
                let n = self.stdout.read(&mut buf).await.unwrap();
                assert!(n > 0, "EOF before {needle:?}; got {:?}", self.seen);
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} within {T:?}; got {:?}", self.seen));
        let at = self.seen.find(needle).unwrap() + needle.len();
        let before = self.seen[..at].to_owned();
        self.seen.drain(..at);
        before
    }

    async fn type_keys(&mut self, keys: &[u8]) {
        self.stdin.write_all(keys).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits for the end; returns the exit code and the rest of the output.
    async fn finish(mut self) -> (Option<i32>, String) {
        let mut rest = Vec::new();
        tokio::time::timeout(T, self.stdout.read_to_end(&mut rest)).await.unwrap().unwrap();
        let status = tokio::time::timeout(T, self.child.wait()).await.unwrap().unwrap();
        (status.code(), format!("{}{}", self.seen, String::from_utf8_lossy(&rest)))
    }
}

/// The id prefix (before "…") the list shows for entry `n`.
fn listed_id(list: &str, n: usize) -> String {
    let line = list.lines().find(|l| l.trim_start().starts_with(&format!("{n})"))).unwrap();
    let id = line.split("  id ").nth(1).unwrap();
    id.trim().trim_end_matches('…').to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_user_picks_an_account_by_number() {
    if !have_script() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let (_key, d) = key_with_two_accounts().await;
    let mut tty = Tty::authenticate(&d);
    let list = tty.expect("Pick an account [1-2]: ").await;
    assert!(list.contains("Several credentials for example.com"), "{list}");
    let second = listed_id(&list, 2);
    assert_ne!(second, listed_id(&list, 1));
    // Out of range and not a number: re-prompt, nothing chosen yet.
    tty.type_keys(b"7\r").await;
    tty.expect("please type a number from 1 to 2").await;
    tty.type_keys(b"bob\r").await;
    tty.expect("please type a number from 1 to 2").await;
    tty.expect("Pick an account [1-2]: ").await;
    tty.type_keys(b"2\r").await;
    let (code, out) = tty.finish().await;
    assert_eq!(code, Some(0), "{out}");
    let id_line = out.lines().find(|l| l.trim_start().starts_with("credential_id")).unwrap();
    assert!(id_line.contains(&second), "picked #2 ({second}) → {id_line}\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_d_and_ctrl_c_at_the_picker_cancel() {
    if !have_script() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let (_key, d) = key_with_two_accounts().await;
    for (keys, what) in [(&b"\x04"[..], "Ctrl-D"), (&b"\x03"[..], "Ctrl-C")] {
        let mut tty = Tty::authenticate(&d);
        tty.expect("Pick an account [1-2]: ").await;
        tty.type_keys(keys).await;
        let (code, out) = tty.finish().await;
        assert_eq!(code, Some(1), "{what}: {out}");
        assert!(out.contains("cancelled"), "{what}: {out}");
        assert!(!out.lines().any(|l| l.trim_start().starts_with("credential_id")), "{what}: {out}");
    }
}
