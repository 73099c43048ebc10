//! `cablebridge bench` as CI runs it: the built binary, `--quick --json`, bounded in time. Checks
//! the shape of the output (one JSON object per line, unit-suffixed numeric fields, parameters),
//! never the timings; allocation counts are asserted (the in-place crypter path allocates nothing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cablebridge"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bench {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Field names are a unit suffix, a parameter, or a documented dimensionless ratio/count.
fn named_with_unit(name: &str) -> bool {
    const UNITS: &[&str] = &[
        "_ns",
        "_us",
        "_ms",
        "_per_s",
        "_kib_per_pair",
        "_per_frame",
        "_per_message",
        "_per_advert",
        "_per_pair",
        "_bytes",
        "_s",
        "_kib",
        "_per_request",
        "_per_response",
    ];
    const PARAMS: &[&str] = &[
        "bytes",
        "pending",
        "pairs",
        "pairs_wanted",
        // tunnel: load generator processes, timed round trips.
        "generators",
        "round_trips",
        "reports",
        "ceremonies",
        "sessions",
        "threads",
        // adverts: counts of adverts / samples.
        "delivered",
        "lost",
        "samples",
        "missed",
        "fido_adverts",
        "forwarded",
        "overflow_dropped",
        "duplicates_dropped",
    ];
    UNITS.iter().any(|u| name.ends_with(u))
        || PARAMS.contains(&name)
        || name.starts_with("ratio")
        || name.starts_with("throughput_ratio")
}

#[test]
fn crypter_quick_json_has_one_object_per_size_with_units_and_zero_allocs() {
    let (code, stdout, stderr) = run(&["bench", "crypter", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let objects: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    let sizes: Vec<u64> = objects.iter().map(|o| o["bytes"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [64, 1024, 16384]);
    for o in &objects {
        let map = o.as_object().unwrap();
        assert_eq!(map["bench"], "crypter");
        for key in
            ["median_ns", "p10_ns", "p90_ns", "baseline_median_ns", "throughput_ratio", "mib_per_s"]
        {
            assert!(map[key].as_f64().unwrap() > 0.0, "{key} in {o}");
        }
        for (name, value) in map {
            if matches!(name.as_str(), "bench" | "what" | "note") {
                assert!(value.is_string());
                continue;
            }
            assert!(value.is_number(), "{name} is not a number in {o}");
            assert!(named_with_unit(name), "field {name} carries no unit");
        }
        assert!(map["p10_ns"].as_f64() <= map["p90_ns"].as_f64());
        // The in-place path allocates nothing per frame (counted by the binary's allocator).
        assert_eq!(map["allocs_per_frame"].as_f64(), Some(0.0), "{o}");
    }
}

#[test]
fn unknown_bench_is_a_usage_error() {
    let (code, _, stderr) = run(&["bench", "nosuch"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown bench `nosuch`"), "{stderr}");
}

#[test]
fn eid_and_ctaphid_quick_report_their_parameters() {
    let (code, stdout, stderr) = run(&["bench", "eid", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let pending: Vec<u64> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|o| o["what"].as_str().unwrap().starts_with("foreign"))
        .map(|o| {
            assert!(o["ratio_to_baseline"].as_f64().unwrap() > 0.0);
            assert_eq!(o["allocs_per_advert"].as_f64(), Some(0.0), "{o}");
            o["pending"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(pending, [1, 16, 64, 1000]);

    let (code, stdout, stderr) = run(&["bench", "ctaphid", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    for line in stdout.lines() {
        let o: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(o["bytes"].as_u64().unwrap() >= 64);
        assert!(o["allocs_per_message"].as_f64().is_some(), "{o}");
    }
}

/// `bench handshake` names the P-256 backend that ran (the one this binary was built with:
/// aws-lc-rs with `--features aws-lc`, else p256) on every line, and times the primitives with it.
#[test]
fn handshake_quick_names_its_p256_backend() {
    let backend = if cfg!(feature = "aws-lc") { "(aws-lc-rs)" } else { "(p256)" };
    let (code, stdout, stderr) = run(&["bench", "handshake", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let all = objects(&stdout);
    let whats: Vec<&str> = all.iter().map(|o| o["what"].as_str().unwrap()).collect();
    assert_eq!(
        whats,
        [
            format!("KNpsk0 desktop side {backend}"),
            format!("KNpsk0 phone side {backend}"),
            format!("primitives, medians {backend}"),
        ]
    );
    for side in &all[..2] {
        assert!(side["ratio_to_primitives"].as_f64().unwrap() > 0.0, "{side}");
        assert!(side["note"].as_str().unwrap().contains(&backend[1..backend.len() - 1]), "{side}");
    }
    assert!(all[2]["ecdh_us"].as_f64().unwrap() > 0.0);
}

/// Each line as a JSON object, every numeric field named with its unit.
fn objects(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| {
            let o: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
            for (name, value) in o.as_object().unwrap() {
                if !matches!(name.as_str(), "bench" | "what" | "note") {
                    assert!(value.is_number(), "{name} is not a number in {o}");
                    assert!(named_with_unit(name), "field {name} carries no unit in {o}");
                }
            }
            o
        })
        .collect()
}

#[test]
fn session_quick_allocates_nothing_per_frame_in_our_layers() {
    let (code, stdout, stderr) = run(&["bench", "session", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let objects = objects(&stdout);
    let in_memory: Vec<&serde_json::Value> = objects
        .iter()
        .filter(|o| o["what"].as_str().unwrap().ends_with("request+response"))
        .collect();
    assert_eq!(in_memory.len(), 3, "{stdout}");
    for o in in_memory {
        assert_eq!(o["allocs_per_frame"].as_f64(), Some(0.0), "{o}");
        assert!(o["median_ns"].as_f64().unwrap() > 0.0);
    }
    let ws: Vec<&serde_json::Value> = objects
        .iter()
        .filter(|o| o["what"].as_str().unwrap().ends_with("over WebSocket"))
        .collect();
    assert_eq!(ws.len(), 3, "{stdout}");
    for o in ws {
        // Our session work over the WebSocket allocates nothing; the send path's one copy
        // (TunnelConnection::send's owned message) is counted apart, never hidden.
        assert_eq!(o["session_allocs_per_frame"].as_f64(), Some(0.0), "{o}");
        assert!(o["ws_send_allocs_per_frame"].as_f64().unwrap() >= 1.0, "{o}");
    }
    let desktop = objects.iter().find(|o| o["what"] == "desktop request, 1024 B").unwrap();
    assert_eq!(desktop["allocs_per_request"].as_f64(), Some(0.0), "{desktop}");
}

#[test]
fn ceremony_quick_runs_real_ceremonies_and_names_every_stage() {
    let (code, stdout, stderr) = run(&["bench", "ceremony", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let objects = objects(&stdout);
    let kinds: Vec<&str> = objects.iter().map(|o| o["what"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2, "{stdout}");
    assert!(kinds[0].starts_with("register") && kinds[1].starts_with("authenticate"), "{kinds:?}");
    for o in &objects {
        assert_eq!(o["ceremonies"], 5, "{o}");
        assert!(o["p50_ms"].as_f64().unwrap() > 0.0, "{o}");
        assert!(o["p50_ms"].as_f64() <= o["p99_ms"].as_f64(), "{o}");
        assert!(o["cpu_per_ceremony_ms"].as_f64().unwrap() > 0.0, "{o}");
        for stage in ["advert", "tunnel_connect", "handshake", "user_response"] {
            let key = format!("{stage}_p50_us");
            assert!(o[&key].as_f64().unwrap() > 0.0, "{key} in {o}");
        }
    }
}

#[test]
fn idle_quick_reports_the_daemon_or_says_it_is_missing() {
    let (code, stdout, stderr) = run(&["bench", "idle", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let objects = objects(&stdout);
    assert_eq!(objects.len(), 1, "{stdout}");
    let o = &objects[0];
    if o["what"].as_str().unwrap().starts_with("skipped") {
        // `cargo test -p cablebridge` alone does not build the service binary.
        assert!(o["note"].as_str().unwrap().contains("CABLEBRIDGED"), "{o}");
    } else {
        assert!(o["rss_kib"].as_f64().unwrap() > 0.0, "{o}");
        assert!(o["wakeups_per_s"].as_f64().unwrap() >= 0.0, "{o}");
        assert!(o["threads"].as_f64().unwrap() >= 1.0, "{o}");
    }
}

#[test]
fn adverts_without_the_mock_bluez_is_skipped_with_the_reason() {
    let (code, stdout, stderr) = run_env(
        &["bench", "adverts", "--quick", "--json"],
        &[("CABLEBRIDGE_MOCK_BLUEZ", "/nonexistent/cablebridge-mock-bluez")],
    );
    assert_eq!(code, 0, "stderr: {stderr}");
    let objects = objects(&stdout);
    assert_eq!(objects.len(), 1, "{stdout}");
    assert!(objects[0]["what"].as_str().unwrap().starts_with("skipped"), "{stdout}");
    assert!(objects[0]["note"].as_str().unwrap().contains("CABLEBRIDGE_MOCK_BLUEZ"), "{stdout}");
}

/// The real path: btleplug scanning the hw-tests mock BlueZ on a private dbus-daemon. Runs for real
/// where the mock binary sits next to `cablebridge` (CI: `cargo test --workspace` builds it) and
/// dbus-daemon is installed; otherwise the bench says `skipped`.
#[test]
fn adverts_quick_measures_the_intake_or_says_why_not() {
    let (code, stdout, stderr) = run(&["bench", "adverts", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let objects = objects(&stdout);
    if objects[0]["what"].as_str().unwrap().starts_with("skipped") {
        assert_eq!(objects.len(), 1, "{stdout}");
        assert!(objects[0]["note"].as_str().unwrap().contains("CABLEBRIDGE_MOCK_BLUEZ"));
        return;
    }
    for o in &objects {
        for (name, value) in o.as_object().unwrap() {
            if !matches!(name.as_str(), "bench" | "what" | "note") {
                assert!(value.is_number(), "{name} in {o}");
                assert!(named_with_unit(name), "field {name} carries no unit");
            }
        }
    }
    let flood = objects.iter().find(|o| o["what"].as_str().unwrap().contains("flood, ")).unwrap();
    // Foreign adverts came through the real scanner.
    assert!(flood["delivered"].as_u64().unwrap() > 0, "{flood}");
    assert!(flood["adverts_per_s"].as_f64().unwrap() > 0.0, "{flood}");
    let delay = objects.iter().find(|o| o["what"].as_str().unwrap().starts_with("match")).unwrap();
    // The matching adverts were accepted by their pending sessions despite the flood.
    assert!(delay["samples"].as_u64().unwrap() >= 1, "{delay}");
    assert!(
        delay["match_delay_p50_ms"].as_f64() <= delay["match_delay_p99_ms"].as_f64(),
        "{delay}"
    );
}

#[test]
fn tunnel_quick_measures_a_separate_server_process_and_the_in_process_baseline() {
    let (code, stdout, stderr) = run(&["bench", "tunnel", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let objects = objects(&stdout);
    assert!(objects.iter().all(|o| o["bench"] == "tunnel"), "{stdout}");
    let (separate, in_process): (Vec<_>, Vec<_>) =
        objects.iter().partition(|o| o["what"].as_str().unwrap().ends_with("server process"));
    assert_eq!(separate.len(), 3, "{stdout}");
    assert_eq!(in_process.len(), 3, "{stdout}");
    for o in &in_process {
        assert!(o["what"].as_str().unwrap().ends_with("in one process"), "{o}");
    }
    // Separate process: 200 pairs reached with one generator, the server's own RSS measured.
    let first = separate[0];
    assert_eq!(first["pairs"].as_f64(), Some(200.0), "{first}");
    assert_eq!(first["pairs_wanted"].as_f64(), Some(200.0), "{first}");
    assert_eq!(first["generators"].as_f64(), Some(1.0), "{first}");
    assert!(first["server_rss_kib_per_pair"].as_f64().unwrap() >= 0.0, "{first}");
    assert!(first["rtt_p50_us"].as_f64().unwrap() > 0.0, "{first}");
    assert!(first["rtt_p50_us"].as_f64() <= first["rtt_p99_us"].as_f64(), "{first}");
    // Paced: 5,000 msg/s for 0.4 s = 1,000 round trips, every one echoed.
    let paced = separate[2];
    assert_eq!(paced["round_trips"].as_f64(), Some(1000.0), "{paced}");
    assert!(paced["server_involuntary_switches_per_s"].is_number(), "{paced}");
    // The baseline keeps its fields: RSS of the whole process.
    assert!(in_process[0]["rss_kib_per_pair"].is_number(), "{}", in_process[0]);
    assert_eq!(in_process[2]["round_trips"].as_f64(), Some(1000.0), "{}", in_process[2]);
}

/// Children of `pid` (every thread's), from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn tunnel_bench_killed_leaves_no_server_or_generator_behind() {
    let mut bench = Command::new(env!("CARGO_BIN_EXE_cablebridge"))
        .args(["bench", "tunnel", "--quick", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the tunnel server and the generator are both up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let kids = loop {
        let kids = children(bench.id());
        if kids.len() >= 2 {
            break kids;
        }
        assert!(Instant::now() < deadline, "the bench started no server and generator");
        assert!(
            bench.try_wait().unwrap().is_none(),
            "the bench ended before its children were seen"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    // SIGKILL: no destructor runs in the bench, only the kernel's parent-death signal.
    bench.kill().unwrap();
    bench.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while kids.iter().any(|&k| running(k)) {
        if Instant::now() > deadline {
            // Leave nothing running after a failure either.
            for k in &kids {
                let _ = Command::new("kill").args(["-9", &k.to_string()]).status();
            }
            panic!("children {kids:?} outlived the killed bench");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
