//! kill -9 during state writes (issue 14): the real `cablebridged` is SIGKILLed at a random
//! moment (seeded, printed) while three clients keep it writing — two forgetting linked phones
//! (each `links.forget` rewrites `links.json`: temp file, fsync, rename, fsync dir) and one
//! running lab runs on a virtual key (each stored in one SQLite transaction in
//! `runs.sqlite3`) — 30 times over one state directory. After every kill: both files parse;
//! no link came back or appeared from nowhere, and every forget the daemon had acknowledged
//! is on disk; every run whose `result` arrived is listed and readable; leftover temp files are
//! 0600. Then a restarted daemon serves exactly what is on disk (`links.list`, `runs.list`,
//! `runs.show` of every run), and its next write removes the temp files the kills left.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod faults_common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridge_service::client::Client;
use cablebridged::labrun::RunStore;
use cablebridged::store::{LinkStore, StoredLink};
use common::{plain_key, Daemon, T};
use faults_common::Baseline;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::time::timeout;

const ITERATIONS: usize = 30;

/// The daemon on a fresh socket but the given (persistent) state directory.
fn start_in(state: &Path) -> Daemon {
    // No rate limit: the clients below write as fast as the daemon answers.
    Daemon::start_in(
        state,
        "[control]\nrate_limit_burst = 100000\nrate_limit_per_second = 100000\n",
        "info",
    )
}

fn seed_links(state: &Path, rng: &mut rand::rngs::StdRng, first: u64, n: u64) {
    let store = LinkStore::in_dir(state);
    for i in first..first + n {
        store
            .upsert(StoredLink {
                name: format!("phone-{i}"),
                phone_public_key: p256::SecretKey::random(&mut *rng).public_key(),
                contact_id: vec![7; 16],
                link_id: i.to_be_bytes(),
                link_secret: LinkSecret::random(&mut *rng),
                tunnel_domain: 0,
                created: 1,
                updated: 1,
            })
            .unwrap();
    }
}

fn link_ids(state: &Path) -> BTreeSet<String> {
    let links = LinkStore::in_dir(state).load().unwrap_or_else(|e| panic!("links.json: {e}"));
    links.iter().map(StoredLink::full_id).collect()
}

/// Every run listed, each readable with its records.
fn run_ids(state: &Path) -> BTreeSet<i64> {
    let store = RunStore::open_in(state).unwrap_or_else(|e| panic!("runs.sqlite3: {e}"));
    let runs = store.list().unwrap_or_else(|e| panic!("runs.sqlite3 list: {e}"));
    for r in &runs {
        let (run, records) = store.get(r.id).unwrap_or_else(|e| panic!("run {}: {e}", r.id));
        assert_eq!(records.len(), 1, "run {} is whole: {run:?}", r.id);
    }
    runs.iter().map(|r| r.id).collect()
}

fn temp_files(state: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp."))
        .collect()
}

/// Forgets `ids` one by one; records each one the daemon acknowledged.
async fn forgetter(mut c: Client, ids: Vec<String>, acked: Arc<Mutex<Vec<String>>>) {
    for id in ids {
        match c.call("links.forget", json!({"name_or_id": id})).await {
            Ok(_) => acked.lock().unwrap().push(id),
            Err(_) => return, // killed
        }
    }
}

/// Runs one-step lab runs until the daemon dies; records each stored run id.
async fn runner(mut c: Client, scenario: String, acked: Arc<Mutex<Vec<i64>>>) {
    loop {
        let Ok(started) = c.call("runs.start", json!({"scenario": scenario})).await else { return };
        let session = started["session"].clone();
        loop {
            let Ok(n) = c.next_notification().await else { return };
            let p = &n["params"];
            if p["session"] != session {
                continue;
            }
            if p["event"] == "result" {
                acked.lock().unwrap().push(p["run_id"].as_i64().unwrap());
                break;
            }
            assert_ne!(p["event"], "error", "{n}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_link_and_run_writes_keeps_every_store_readable() {
    let seed: u64 = std::env::var("CB_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(14);
    println!("seed {seed} (CB_KILL_SEED)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let mut next_link = 0;
    seed_links(&state, &mut rng, next_link, 40);
    next_link += 40;

    let key = plain_key().await;
    let scenario = format!(
        "name = \"kill loop\"\n[defaults]\nrp_id = \"kill.example\"\ntransport = \"usb\"\n\
         device = \"{}\"\ntimeout = \"5s\"\n[[step]]\nname = \"register\"\n\
         action = \"register\"\nuser_name = \"k\"\n",
        key.device_address()
    );

    let (mut forgets, mut runs, mut kills_mid_write, mut hot_journals) = (0, 0, 0, 0);
    for i in 0..ITERATIONS {
        let links_before = link_ids(&state);
        let runs_before = run_ids(&state);
        let daemon = start_in(&state);

        let mut shuffled: Vec<String> = links_before.iter().cloned().collect();
        for j in (1..shuffled.len()).rev() {
            shuffled.swap(j, rng.gen_range(0..=j));
        }
        let half = shuffled.len() / 2;
        let forgot = Arc::new(Mutex::new(Vec::new()));
        let stored = Arc::new(Mutex::new(Vec::new()));
        let tasks = [
            tokio::spawn(forgetter(
                daemon.client().await,
                shuffled[..half].to_vec(),
                forgot.clone(),
            )),
            tokio::spawn(forgetter(
                daemon.client().await,
                shuffled[half..].to_vec(),
                forgot.clone(),
            )),
            tokio::spawn(runner(daemon.client().await, scenario.clone(), stored.clone())),
        ];
        tokio::time::sleep(Duration::from_millis(rng.gen_range(5..300))).await;
        let mut daemon = daemon;
        daemon.child.kill().unwrap(); // SIGKILL
        let status = daemon.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status:?}");
        for t in tasks {
            timeout(T, t).await.expect("clients notice the death").unwrap();
        }

        // A kill inside a SQLite transaction leaves a hot journal, rolled back by the next open.
        let journal = state.join("runs.sqlite3-journal");
        if let Ok(meta) = std::fs::metadata(&journal) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the journal holds run data");
            hot_journals += 1;
        }
        let links_after = link_ids(&state);
        let forgot = forgot.lock().unwrap().clone();
        assert!(links_after.is_subset(&links_before), "iteration {i}: a link appeared");
        for id in &forgot {
            assert!(!links_after.contains(id), "iteration {i}: acknowledged forget of {id} lost");
        }
        // Forgets in flight at the kill may or may not have landed, nothing else.
        assert!(links_before.len() - links_after.len() <= forgot.len() + 2, "iteration {i}");
        let runs_after = run_ids(&state);
        assert!(runs_after.is_superset(&runs_before), "iteration {i}: a run vanished");
        for id in stored.lock().unwrap().iter() {
            assert!(runs_after.contains(id), "iteration {i}: acknowledged run {id} lost");
        }
        assert!(runs_after.len() <= runs_before.len() + stored.lock().unwrap().len() + 1);
        for t in temp_files(&state) {
            let mode = std::fs::metadata(&t).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", t.display());
            kills_mid_write += 1;
        }
        forgets += forgot.len();
        runs += stored.lock().unwrap().len();
        if links_after.len() < 10 {
            seed_links(&state, &mut rng, next_link, 40);
            next_link += 40;
        }
    }
    println!(
        "{ITERATIONS} kills: {forgets} acknowledged forgets, {runs} acknowledged runs, \
         {kills_mid_write} temp files left by kills mid-write, {hot_journals} SQLite journals \
         left by kills mid-transaction"
    );
    assert!(forgets > 0 && runs > 0, "the loop did write");

    // A restarted daemon serves exactly what is on disk.
    let daemon = start_in(&state);
    let base = Baseline::settled(&daemon).await;
    let mut c = daemon.client().await;
    let listed = c.call("links.list", json!({})).await.unwrap();
    let listed: BTreeSet<String> = listed["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    let on_disk = link_ids(&state);
    assert_eq!(listed.len(), on_disk.len());
    assert!(listed.iter().all(|short| on_disk.iter().any(|full| full.starts_with(short))));
    let runs_listed = c.call("runs.list", json!({})).await.unwrap();
    let runs_listed: BTreeSet<i64> =
        runs_listed["runs"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(runs_listed, run_ids(&state));
    for id in &runs_listed {
        let shown: Value = c.call("runs.show", json!({"id": id})).await.unwrap();
        assert_eq!(shown["run"]["id"], *id);
    }
    // Its next link write clears what the kills left behind.
    let victim = on_disk.iter().next().unwrap().clone();
    c.call("links.forget", json!({"name_or_id": victim})).await.unwrap();
    assert_eq!(temp_files(&state), Vec::<std::path::PathBuf>::new());
    drop(c);
    base.check(&daemon, "the restarted daemon's reads and write").await;
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    key.shutdown().await.unwrap();
}
