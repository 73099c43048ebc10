//! `cablebridge run` and `cablebridge runs` through the built binary, loopback only: a scenario
//! against the in-process virtual phone (hybrid, own tunnel server, injected adverts) and a
//! `cablebridge virtual-key` process (usb), producing JSON and JUnit reports that are parsed
//! and checked, stored, run again and compared; an unmet expectation (exit 1, a JUnit
//! failure); a malformed scenario (exit 2 naming the line).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde::Deserialize;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cablebridge"))
}

/// `cablebridge virtual-key` on 127.0.0.1:0, killed on drop.
struct VirtualKey {
    child: Child,
    address: String,
}

impl VirtualKey {
    fn spawn() -> VirtualKey {
        let mut child = bin()
            .args(["virtual-key", "--json", "--listen", "udp:127.0.0.1:0"])
            .args(["--user-presence-delay-ms", "20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let listening: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(listening["event"], "listening", "{line}");
        let address = listening["address"].as_str().unwrap().to_owned();
        VirtualKey { child, address }
    }
}

impl Drop for VirtualKey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with a bounded wall clock (the scenario timeouts bound every ceremony; the
/// outer `timeout` is the backstop should something hang).
fn cablebridge(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_cablebridge"))
        .args(args)
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn policy_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/tests/fixtures/policy").join(name)
}

/// The hybrid (virtual phone) and usb (virtual key) steps, each register then authenticate
/// with the new credential; the hybrid registration judged under a policy.
fn scenario(device: &str, hybrid_expect: &str) -> String {
    format!(
        r#"
name = "lab loopback"

[defaults]
rp_id = "lab.cablebridge.example"
timeout = "20s"

[virtual_phone]
attestation = "packed"
presence_delay_ms = 10

[[step]]
name = "phone register"
action = "register"
transport = "hybrid"
phone = "virtual"
user_name = "alice"
policy = "{policy}"
expect = "{hybrid_expect}"

[[step]]
name = "phone sign-in"
action = "authenticate"
transport = "hybrid"
phone = "virtual"
credential_from = "phone register"

[[step]]
name = "key register"
action = "register"
transport = "usb"
device = "{device}"
user_name = "bob"

[[step]]
name = "key sign-in"
action = "authenticate"
transport = "usb"
device = "{device}"
credential_from = "key register"
"#,
        policy = policy_fixture("legacy-block-authenticator.json").display(),
    )
}

#[derive(Debug, Deserialize)]
struct TestSuites {
    #[serde(rename = "@tests")]
    tests: usize,
    #[serde(rename = "@failures")]
    failures: usize,
    testsuite: TestSuite,
}

#[derive(Debug, Deserialize)]
struct TestSuite {
    #[serde(rename = "testcase", default)]
    testcases: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
struct TestCase {
    #[serde(rename = "@classname")]
    classname: String,
    #[serde(rename = "@name")]
    name: String,
    failure: Option<Failure>,
}

#[derive(Debug, Deserialize)]
struct Failure {
    #[serde(rename = "@message")]
    message: String,
}

fn junit(path: &Path) -> TestSuites {
    let xml = std::fs::read_to_string(path).unwrap();
    serde_xml_rs::from_str(&xml).unwrap_or_else(|e| panic!("JUnit does not parse ({e}):\n{xml}"))
}

#[test]
fn virtual_phone_and_key_reports_stored_and_compared() {
    let key = VirtualKey::spawn();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.toml");
    std::fs::write(&file, scenario(&key.address, "accept")).unwrap();
    let state = dir.path().join("state");
    let (report, xml) = (dir.path().join("run.json"), dir.path().join("run.xml"));
    let out = cablebridge(&[
        "run",
        file.to_str().unwrap(),
        "--repeat",
        "2",
        "--report",
        report.to_str().unwrap(),
        "--junit",
        xml.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("success rate 100.0%"), "{}", text(&out));
    assert!(stdout.contains("stored as run 1"), "{}", text(&out));

    let doc: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["run_id"], 1);
    assert_eq!(doc["scenario"], "lab loopback");
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), 8, "4 steps × 2 iterations");
    for r in records {
        assert_eq!(r["outcome"], "success", "{r}");
        assert_eq!(r["expectation_met"], true, "{r}");
        assert!(r["aaguid"].as_str().unwrap().len() == 36, "{r}");
        assert!(r["total_ms"].as_u64().is_some(), "{r}");
    }
    let phone_reg = &records[0];
    assert_eq!(phone_reg["transport"], "hybrid");
    assert_eq!(phone_reg["device"], "cablebridge virtual phone");
    assert_eq!(phone_reg["policy"]["verdict"], "accept", "{phone_reg}");
    for stage in ["advert", "tunnel_connect", "handshake", "user_response"] {
        assert!(phone_reg["timings_ms"][stage].is_u64(), "{stage}: {phone_reg}");
    }
    // The sign-in used the registration's credential: same model reported, no policy asked.
    assert_eq!(records[1]["aaguid"], phone_reg["aaguid"]);
    assert_eq!(records[1]["action"], "authenticate");
    let key_reg = &records[2];
    assert_eq!(key_reg["transport"], "usb");
    assert!(key_reg["device"].as_str().unwrap().contains("127.0.0.1"), "{key_reg}");
    for stage in ["device_select", "user_presence"] {
        assert!(key_reg["timings_ms"][stage].is_u64(), "{stage}: {key_reg}");
    }
    assert_eq!(records[7]["iteration"], 2);
    let summary = &doc["summary"];
    assert_eq!(summary["ceremonies"], 8);
    assert_eq!(summary["success_rate"], 1.0);
    assert_eq!(summary["expectations_failed"], 0);
    let stages: Vec<&str> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert!(stages.contains(&"handshake") && stages.contains(&"user_presence"), "{stages:?}");
    for s in summary["stages"].as_array().unwrap() {
        assert!(s["p50_ms"].as_u64().unwrap() <= s["p95_ms"].as_u64().unwrap(), "{s}");
        assert!(s["p95_ms"].as_u64().unwrap() <= s["max_ms"].as_u64().unwrap(), "{s}");
    }

    let suites = junit(&xml);
    assert_eq!((suites.tests, suites.failures), (8, 0));
    assert_eq!(suites.testsuite.testcases.len(), 8);
    assert!(suites.testsuite.testcases.iter().all(|c| c.failure.is_none()));
    assert_eq!(suites.testsuite.testcases[2].classname, "lab loopback.key register");
    assert!(suites.testsuite.testcases[7].name.starts_with("iteration 2: key sign-in"));

    // The store: 0600, a second run, the list, one run, and the comparison.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(state.join("runs.sqlite3")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let second =
        cablebridge(&["run", file.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let list = cablebridge(&["runs", "list", "--json", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list));
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0]["id"].as_i64(), runs[1]["id"].as_i64()), (Some(1), Some(2)));
    assert_eq!(runs[0]["summary"]["ceremonies"], 8);
    assert_eq!(runs[1]["summary"]["ceremonies"], 4);

    let show =
        cablebridge(&["runs", "show", "1", "--json", "--state-dir", state.to_str().unwrap()]);
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(show["records"].as_array().unwrap(), records, "stored records are the report's");

    let cmp = cablebridge(&["runs", "compare", "1", "2", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(cmp.status.code(), Some(0), "{}", text(&cmp));
    let human = String::from_utf8_lossy(&cmp.stdout);
    assert!(human.contains("run 1 → run 2"), "{human}");
    assert!(human.contains("p50 #1") && human.contains("p95 #2"), "{human}");
    for stage in ["handshake", "device_select", "user_presence", "total"] {
        assert!(human.lines().any(|l| l.starts_with(stage)), "{stage}: {human}");
    }
    let cmp = cablebridge(&[
        "runs",
        "compare",
        "1",
        "2",
        "--json",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let cmp: Value = serde_json::from_slice(&cmp.stdout).unwrap();
    assert_eq!(
        (cmp["comparison"]["a"].as_i64(), cmp["comparison"]["b"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(cmp["comparison"]["success_rate_delta"], 0.0);
    let row = cmp["comparison"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "handshake")
        .unwrap()
        .clone();
    assert_eq!(
        row["p50_delta"].as_i64().unwrap(),
        row["p50_b"].as_i64().unwrap() - row["p50_a"].as_i64().unwrap()
    );

    let missing = cablebridge(&["runs", "show", "9", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no run 9"), "{}", text(&missing));
}

#[test]
fn unmet_expectation_exits_1_with_a_junit_failure() {
    let key = VirtualKey::spawn();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.toml");
    // The policy blocks only the Authenticator AAGUIDs: the virtual phone is accepted, so
    // `expect = "reject"` is not met. A dead key address must fail at device_select, as expected.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut text_ = scenario(&key.address, "reject");
    text_.push_str(&format!(
        r#"
[[step]]
name = "dead key"
action = "register"
transport = "usb"
device = "udp:127.0.0.1:{port}"
timeout = "2s"
expect_stage = "device_select"
"#
    ));
    std::fs::write(&file, text_).unwrap();
    let (report, xml) = (dir.path().join("run.json"), dir.path().join("run.xml"));
    let out = cablebridge(&[
        "run",
        file.to_str().unwrap(),
        "--json",
        "--report",
        report.to_str().unwrap(),
        "--junit",
        xml.to_str().unwrap(),
        "--state-dir",
        dir.path().join("state").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // JSON lines: one record per ceremony, the summary, then the error.
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.iter().filter(|l| l["event"] == "record").count(), 5, "{}", text(&out));
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "error");
    assert!(last["message"].as_str().unwrap().contains("1 of 5 expectations not met"), "{last}");

    let doc: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records[0]["policy"]["verdict"], "accept");
    assert_eq!(records[0]["expectation_met"], false);
    assert_eq!(records[0]["expectation_detail"], "expected policy verdict reject, got accept");
    let dead = &records[4];
    assert_eq!(
        (dead["outcome"].as_str(), dead["failure_stage"].as_str()),
        (Some("error"), Some("device_select")),
        "{dead}"
    );
    assert_eq!(dead["expectation_met"], true, "{dead}");
    assert_eq!(doc["summary"]["failures_by_stage"]["device_select"], 1);

    let suites = junit(&xml);
    assert_eq!((suites.tests, suites.failures), (5, 1));
    let failed: Vec<&TestCase> =
        suites.testsuite.testcases.iter().filter(|c| c.failure.is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].classname, "lab loopback.phone register");
    assert_eq!(
        failed[0].failure.as_ref().unwrap().message,
        "expected policy verdict reject, got accept"
    );
}

#[test]
fn malformed_scenarios_exit_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cases = [
        // An unknown key on line 5.
        (
            "[defaults]\nrp_id = \"x\"\n[[step]]\naction = \"register\"\nuser_nam = \"a\"\n",
            "line 5",
            "user_nam",
        ),
        // A bad enum value on line 3.
        ("[[step]]\naction = \"register\"\ntransport = \"nfc\"\nrp_id = \"x\"\n", "line 3", "nfc"),
        // TOML syntax on line 2.
        ("[[step]]\naction = register\n", "line 2", ""),
    ];
    for (body, line, word) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, body).unwrap();
        let out =
            cablebridge(&["run", file.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{body}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.toml") && err.contains(line) && err.contains(word),
            "{body}: {err}"
        );
    }
    // Nothing ran, so nothing was stored.
    assert!(!state.join("runs.sqlite3").exists());
    let missing = cablebridge(&["run", dir.path().join("nope.toml").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

/// Ctrl-C while a real-phone step waits for the advert: the ceremony is cancelled at `advert`,
/// later steps do not start, what ran is stored, exit 1.
#[test]
fn ctrl_c_stops_the_run_and_stores_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.toml");
    let adverts = dir.path().join("adverts.sock");
    std::fs::write(
        &file,
        format!(
            r#"
[defaults]
rp_id = "lab.cablebridge.example"
timeout = "60s"

[[step]]
name = "waits for a phone"
action = "register"
transport = "hybrid"
phone = "real"
advert_source = "unix:{}"
tunnel_url = "ws://127.0.0.1:9"

[[step]]
name = "never starts"
action = "register"
transport = "usb"
device = "udp:127.0.0.1:9"
"#,
            adverts.display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut child = bin()
        .args(["run", file.to_str().unwrap(), "--repeat", "3"])
        .args(["--state-dir", state.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("scan this QR code") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "stderr ended before the QR code");
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("run did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(rest.contains("interrupted after 1 of 6 ceremonies (run 1)"), "{rest}");

    let show =
        cablebridge(&["runs", "show", "1", "--json", "--state-dir", state.to_str().unwrap()]);
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    let records = show["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{show}");
    assert_eq!(records[0]["outcome"], "error");
    assert_eq!(records[0]["failure_stage"], "advert", "{}", records[0]);
    assert_eq!(records[0]["expectation_met"], false);
}
