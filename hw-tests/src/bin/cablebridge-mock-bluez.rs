//! `cablebridge-mock-bluez`: the hw-tests mock BlueZ as a process, for `cablebridge bench
//! adverts` (issue 13). It starts a private `dbus-daemon` ([`PrivateBus`]), serves the mock
//! `org.bluez` on it with one powered adapter `hci0`, 64 foreign devices and one "phone" device,
//! prints `ready <bus address>` and then obeys one command per stdin line:
//!
//! * `flood <count> <rate>` — `count` foreign FIDO (0xFFF9) service-data adverts
//!   (`PropertiesChanged`, round-robin over the foreign devices, each payload distinct) at
//!   `rate` per second (`0`: as fast as the mock can emit), in the background; prints
//!   `flooded <sent> <seconds> <cpu seconds of this process during the flood>` when done.
//! * `advert <hex>` — one advert with that service data from the phone device, at once; prints
//!   `sent`.
//!
//! End of stdin (or `quit`) stops it and its bus. Errors are printed as `error <text>` (exit 1);
//! a missing `dbus-daemon` is one. Test-tier tool: not installed, never run in production.

use cablebridge_hw_tests::bus::{BusPolicy, PrivateBus};
use cablebridge_hw_tests::mock_bluez::{AdapterSpec, MockBluez};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use zbus::zvariant::OwnedObjectPath;

const FFF9: &str = "0000fff9-0000-1000-8000-00805f9b34fb";
const FOREIGN: usize = 64;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// This process's CPU time (user + system, all threads) from /proc/self/stat, in seconds
/// (10 ms resolution: clock ticks at the usual USER_HZ of 100).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

async fn flood(mock: Arc<MockBluez>, devices: Arc<Vec<OwnedObjectPath>>, count: u64, rate: u64) {
    let t0 = Instant::now();
    let cpu0 = cpu_seconds().unwrap_or(0.0);
    let mut sent = 0u64;
    while sent < count {
        let due = if rate == 0 {
            count
        } else {
            (rate as u128 * t0.elapsed().as_micros() / 1_000_000).min(count as u128) as u64
        };
        while sent < due {
            sent += 1;
            let mut data = [0u8; 20];
            data[..8].copy_from_slice(&sent.to_le_bytes());
            data[8..16].copy_from_slice(&(t0.elapsed().as_nanos() as u64).to_le_bytes());
            data[19] = 0xaa;
            let dev = &devices[(sent as usize) % devices.len()];
            if let Err(e) = mock.flood_advert(dev, FFF9, &data).await {
                say(&format!("error flood: {e}"));
                return;
            }
        }
        if sent < count {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let cpu = cpu_seconds().map_or("-".to_owned(), |c| format!("{:.3}", c - cpu0));
    say(&format!("flooded {sent} {:.6} {cpu}", t0.elapsed().as_secs_f64()));
}

async fn run() -> Result<(), String> {
    let bus = PrivateBus::start(BusPolicy::Open).map_err(|e| format!("dbus-daemon: {e}"))?;
    let mock = MockBluez::start(bus.address()).await.map_err(|e| format!("mock BlueZ: {e}"))?;
    let mock = Arc::new(mock);
    mock.add_adapter(AdapterSpec::new("hci0")).await.map_err(|e| format!("adapter: {e}"))?;
    let mut devices = Vec::with_capacity(FOREIGN);
    for i in 0..FOREIGN {
        let d = mock
            .add_device("hci0", [0xf0, 0, 0, 0, 0, i as u8], Some(-90), &[])
            .await
            .map_err(|e| format!("device: {e}"))?;
        devices.push(OwnedObjectPath::try_from(d).map_err(|e| format!("device path: {e}"))?);
    }
    let devices = Arc::new(devices);
    let phone = mock
        .add_device("hci0", [0x4a; 6], Some(-50), &[])
        .await
        .map_err(|e| format!("device: {e}"))?;
    say(&format!("ready {}", bus.address()));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut floods = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["flood", count, rate] => {
                let (Ok(count), Ok(rate)) = (count.parse::<u64>(), rate.parse::<u64>()) else {
                    say("error flood: expected `flood <count> <rate>`");
                    continue;
                };
                floods.push(tokio::spawn(flood(mock.clone(), devices.clone(), count, rate)));
            }
            ["advert", hex] => match parse_hex(hex) {
                Some(data) => {
                    match mock.advertise_from(&phone, Some(-50), &[(FFF9, &data)]).await {
                        Ok(()) => say("sent"),
                        Err(e) => say(&format!("error advert: {e}")),
                    }
                }
                None => say("error advert: not hex"),
            },
            ["quit"] => break,
            [] => {}
            _ => say(&format!("error unknown command: {line}")),
        }
    }
    for f in floods {
        f.abort();
    }
    drop(mock);
    drop(bus);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}
