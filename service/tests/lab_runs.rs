//! `runs.list`, `runs.show`, `runs.compare` through the daemon over a lab-run store written by
//! the library (`cablebridged::labrun::RunStore`) in the daemon's state dir: the same JSON as
//! `cablebridge runs ... --json`; a missing run is refused naming its parameter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_service::client::ClientError;
use cablebridged::labrun::{Comparison, Record, RunStore, Summary};
use common::Daemon;
use serde_json::{json, Value};

fn record(iteration: u32, setup_ms: u64, ok: bool) -> Record {
    Record {
        iteration,
        step: "s<1>".into(),
        action: "register".into(),
        transport: "usb".into(),
        device: None,
        aaguid: None,
        authenticator_name: None,
        timings_ms: [("setup".to_owned(), setup_ms), ("user_presence".to_owned(), 100)].into(),
        total_ms: setup_ms + 100,
        outcome: if ok { "success" } else { "error" }.into(),
        failure_stage: (!ok).then(|| "user_presence".to_owned()),
        error: None,
        policy: None,
        expect: "success".into(),
        expectation_met: ok,
        expectation_detail: (!ok).then(|| "wanted success, got error".to_owned()),
    }
}

#[tokio::test]
async fn list_show_compare_a_store_written_by_the_library() {
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;
    // An empty store first (created on demand in the state dir).
    assert_eq!(c.call("runs.list", json!({})).await.unwrap(), json!({"runs": []}));

    let first: Vec<Record> = (1..=4).map(|i| record(i, u64::from(i) * 10, i != 3)).collect();
    let second: Vec<Record> = (1..=2).map(|i| record(i, 5, true)).collect();
    let (s1, s2) = (Summary::of(&first), Summary::of(&second));
    {
        let mut store = RunStore::open_in(&daemon.path("state")).unwrap();
        assert_eq!(store.insert("smoke", "smoke.toml", 1_700_000_000, 4, &first, &s1).unwrap(), 1);
        assert_eq!(store.insert("smoke", "smoke.toml", 1_700_000_100, 2, &second, &s2).unwrap(), 2);
    }

    let list = c.call("runs.list", json!({})).await.unwrap();
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list}");
    assert_eq!((runs[0]["id"].as_i64(), runs[1]["id"].as_i64()), (Some(1), Some(2)));
    assert_eq!(runs[0]["scenario"], "smoke");
    assert_eq!(runs[0]["summary"], serde_json::to_value(&s1).unwrap());

    let show = c.call("runs.show", json!({"id": 1})).await.unwrap();
    assert_eq!(show["run"]["started_at"], 1_700_000_000);
    assert_eq!(show["records"], serde_json::to_value(&first).unwrap());

    let cmp = c.call("runs.compare", json!({"a": 1, "b": 2})).await.unwrap();
    assert_eq!(cmp["comparison"], serde_json::to_value(Comparison::of(1, &s1, 2, &s2)).unwrap());

    for (method, params, field) in [
        ("runs.show", json!({"id": 9}), "id"),
        ("runs.compare", json!({"a": 1, "b": 9}), "b"),
        ("runs.compare", json!({"a": 9, "b": 1}), "a"),
    ] {
        match c.call(method, params.clone()).await {
            Err(ClientError::Rpc(e)) => {
                assert_eq!((e.code, e.data), (-32006, Some(json!({"field": field}))), "{params}");
                assert!(e.message.contains("no run 9"), "{}", e.message);
            }
            other => panic!("{params}: {other:?}"),
        }
    }
    for (method, params, field) in [
        ("runs.show", json!({}), "id"),
        ("runs.show", json!({"id": -1}), "id"),
        ("runs.compare", json!({"a": 1}), "b"),
        ("runs.list", json!({"all": true}), "all"),
    ] {
        match c.call(method, params.clone()).await {
            Err(ClientError::Rpc(e)) => {
                assert_eq!((e.code, e.data), (-32602, Some(json!({"field": field}))), "{params}")
            }
            other => panic!("{params}: {other:?}"),
        }
    }
    let _: Value = c.call("version", json!({})).await.unwrap();
}

/// `runs.start` runs a lab run (the virtual phone scenario, inline TOML) as a daemon session:
/// one `record` event per ceremony, then a `result` naming the stored run, which `runs.show`
/// then returns; a scenario file works the same; a bad scenario names the field and the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_start_runs_and_stores_a_lab_run() {
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;
    let scenario = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/scenarios/virtual-phone.toml"
    ))
    .unwrap();
    let started = c.call("runs.start", json!({"scenario": scenario, "repeat": 2})).await.unwrap();
    let id = started["session"].as_u64().unwrap();
    let events = common::wait_end(&mut c, id).await;
    let last = events.last().unwrap();
    assert_eq!(last["event"], "result", "{events:?}");
    assert_eq!((last["run_id"].as_i64(), last["interrupted"].as_bool()), (Some(1), Some(false)));
    assert_eq!(last["scenario"], "virtual phone smoke");
    let records: Vec<&Value> = events.iter().filter(|e| e["event"] == "record").collect();
    assert_eq!(records.len(), 4, "two steps, twice: {events:?}");
    for r in &records {
        assert_eq!(r["record"]["outcome"], "success", "{r}");
        assert_eq!(r["record"]["expectation_met"], true, "{r}");
    }
    assert_eq!(last["summary"]["ceremonies"], 4, "{last}");
    let show = c.call("runs.show", json!({"id": 1})).await.unwrap();
    assert_eq!(show["records"].as_array().unwrap().len(), 4);
    assert_eq!(show["run"]["scenario_path"], "(inline)");

    let path = daemon.path("smoke.toml");
    std::fs::write(&path, &scenario).unwrap();
    let started =
        c.call("runs.start", json!({"scenario_file": path.display().to_string()})).await.unwrap();
    let last = common::wait_end(&mut c, started["session"].as_u64().unwrap()).await.pop().unwrap();
    assert_eq!((last["event"].as_str(), last["run_id"].as_i64()), (Some("result"), Some(2)));
    let list = c.call("runs.list", json!({})).await.unwrap();
    assert_eq!(list["runs"].as_array().unwrap().len(), 2, "{list}");

    for (params, field) in [
        (json!({"scenario": "name = 1\n[[step]]\nbogus = true\n"}), "scenario"),
        (json!({"scenario_file": "/nonexistent/x.toml"}), "scenario_file"),
        (json!({}), "scenario"),
        (json!({"scenario": scenario, "repeat": 0}), "repeat"),
    ] {
        match c.call("runs.start", params.clone()).await {
            Err(ClientError::Rpc(e)) => {
                assert_eq!((e.code, e.data), (-32602, Some(json!({"field": field}))), "{params}")
            }
            other => panic!("{params}: {other:?}"),
        }
    }
}
