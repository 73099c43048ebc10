//! Measurements behind `cablebridge bench` (issue 13): the numbers users care about, each with a
//! baseline measured in the same run where one is named, because this machine class is noisy
//! (/work/shared/notes/performance-anchors.md: compare ratios from one run, not absolute figures).
//!
//! Every measurement repeats its timed loop several times and reports the median and spread
//! (p10/p90) of the per-repetition figure. `quick` shrinks counts so each measurement takes well
//! under a second: the CLI's `--quick` and CI use it to keep the benches from rotting; its numbers
//! are indicative only.
//!
//! Heap allocations are counted through an [`AllocCounter`] the caller supplies: the `cablebridge`
//! binary installs a counting global allocator (tools/src/alloc_count.rs) that counts only while a
//! measurement has switched it on. Without a counter, allocation fields are omitted.
//!
//! The `micro` benches mirror `protocol/benches/*.rs` (same baselines) but run through the
//! product's own types (`AdvertMatcher`, `Crypter`, the Noise handshake, CTAPHID framing);
//! `net` runs the tunnel server under a bounded loopback load; `adverts` runs the real BLE scanner
//! against the hw-tests mock BlueZ process (`cablebridge-mock-bluez`).

mod adverts;
mod ceremony;
mod idle;
mod micro;
mod net;
mod session;

use serde_json::{Map, Value};
use std::time::{Duration, Instant};

pub use adverts::adverts;
pub use ceremony::ceremony;
pub use idle::idle;
pub use micro::{crypter, ctaphid, eid, handshake};
pub use net::{tunnel, tunnel_generator};
pub use session::session;

/// Counts heap allocations while switched on (implemented by the binary's global allocator).
pub trait AllocCounter: Sync {
    /// Resets the count and starts counting (every thread's allocations count).
    fn start(&self);
    /// Stops counting and returns the allocations made since [`AllocCounter::start`].
    fn stop(&self) -> u64;
}

/// How a bench run is sized and what it can observe.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// Small counts: seconds for everything, numbers indicative only.
    pub quick: bool,
    /// The allocation counter, when the process has one.
    pub allocs: Option<&'a dyn AllocCounter>,
}

impl std::fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("quick", &self.quick)
            .field("allocs", &self.allocs.is_some())
            .finish()
    }
}

impl Options<'_> {
    /// Repetitions of each timed loop (the median and spread are taken over these).
    pub fn reps(&self) -> usize {
        if self.quick {
            5
        } else {
            21
        }
    }

    /// Runs `f` with the allocation counter on; `None` without a counter.
    pub fn count_allocs(&self, f: impl FnOnce()) -> Option<u64> {
        match self.allocs {
            Some(c) => {
                c.start();
                f();
                Some(c.stop())
            }
            None => {
                f();
                None
            }
        }
    }
}

/// The names `cablebridge bench` accepts, in the order `all` runs them.
pub const BENCHES: &[&str] =
    &["eid", "crypter", "handshake", "ctaphid", "session", "ceremony", "tunnel", "idle", "adverts"];

/// Benches of issue 13 this version does not implement (named so `bench` can say so).
pub const NOT_DONE: &[&str] = &[];

/// Runs one bench by name; `None` for an unknown name.
pub fn run(name: &str, opts: &Options<'_>) -> Option<Result<Vec<Measurement>, String>> {
    Some(match name {
        "eid" => Ok(eid(opts)),
        "crypter" => Ok(crypter(opts)),
        "handshake" => Ok(handshake(opts)),
        "ctaphid" => Ok(ctaphid(opts)),
        "session" => session(opts),
        "ceremony" => ceremony(opts),
        "tunnel" => tunnel(opts),
        "idle" => idle(opts),
        "adverts" => adverts(opts),
        _ => return None,
    })
}

/// One measurement: a bench name, a label for people, and numeric fields whose names carry their
/// unit (`median_ns`, `p99_us`, `allocs_per_frame`) or are parameters (`pending`, `bytes`).
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The bench (`eid`, `crypter`, ...).
    pub bench: &'static str,
    /// What was measured, for people (`seal+open 1024 B`).
    pub what: String,
    /// Parameters and results in insertion order.
    pub fields: Vec<(&'static str, f64)>,
    /// Notes for people (the baseline's definition, a goal).
    pub note: Option<String>,
}

impl Measurement {
    /// An empty measurement.
    pub fn new(bench: &'static str, what: impl Into<String>) -> Self {
        Measurement { bench, what: what.into(), fields: Vec::new(), note: None }
    }

    /// Adds a field.
    pub fn field(mut self, name: &'static str, value: f64) -> Self {
        self.fields.push((name, value));
        self
    }

    /// Adds a field when the value is known.
    pub fn opt_field(self, name: &'static str, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.field(name, v),
            None => self,
        }
    }

    /// Adds median/p10/p90 of `stats` with the unit suffix `unit` (`ns`, `us`, `ms`).
    pub fn stats(self, prefix: &'static str, stats: &Stats) -> Self {
        let (m, lo, hi) = match prefix {
            "ns" => ("median_ns", "p10_ns", "p90_ns"),
            "us" => ("median_us", "p10_us", "p90_us"),
            "ms" => ("median_ms", "p10_ms", "p90_ms"),
            _ => ("median", "p10", "p90"),
        };
        self.field(m, stats.median).field(lo, stats.p10).field(hi, stats.p90)
    }

    /// Sets the note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// One JSON object: `bench`, `what`, the fields as numbers, `note` when set.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("bench".into(), Value::from(self.bench));
        m.insert("what".into(), Value::from(self.what.clone()));
        for (name, v) in &self.fields {
            let value = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Value::from(*v as i64)
            } else {
                // Three significant decimals are plenty for noisy timings.
                Value::from((v * 1000.0).round() / 1000.0)
            };
            m.insert((*name).into(), value);
        }
        if let Some(n) = &self.note {
            m.insert("note".into(), Value::from(n.clone()));
        }
        Value::Object(m)
    }

    /// One line for people: `bench  what  name=value ...`.
    pub fn to_line(&self) -> String {
        let mut s = format!("{:<9} {:<34}", self.bench, self.what);
        for (name, v) in &self.fields {
            s.push_str(&format!(" {name}={}", human(*v)));
        }
        s
    }
}

fn human(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Median and spread of repeated samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The median.
    pub median: f64,
    /// 10th percentile (nearest rank).
    pub p10: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
}

impl Stats {
    /// Stats of `samples` (all zero for none).
    pub fn of(mut samples: Vec<f64>) -> Stats {
        if samples.is_empty() {
            return Stats { median: 0.0, p10: 0.0, p90: 0.0, p99: 0.0, min: 0.0, max: 0.0 };
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        let median =
            if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 };
        Stats {
            median,
            p10: rank(0.10),
            p90: rank(0.90),
            p99: rank(0.99),
            min: samples[0],
            max: samples[n - 1],
        }
    }
}

/// Times `reps` runs of `f`, each returning how many operations it did; samples are ns per op.
pub(crate) fn time_per_op(reps: usize, mut f: impl FnMut() -> u64) -> Stats {
    let samples = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let ops = f();
            ns(t.elapsed()) / ops.max(1) as f64
        })
        .collect();
    Stats::of(samples)
}

/// Like [`time_per_op`] for several variants, interleaved repetition by repetition (A B C A B C
/// ...) so that load from other processes hits every variant alike; also returns, per variant,
/// the median over repetitions of `variant[0] / variant[i]` time per op (a same-moment ratio).
pub(crate) fn time_interleaved(
    reps: usize,
    variants: &mut [&mut dyn FnMut() -> u64],
) -> (Vec<Stats>, Vec<f64>) {
    let mut samples = vec![Vec::with_capacity(reps); variants.len()];
    for _ in 0..reps {
        for (i, f) in variants.iter_mut().enumerate() {
            let t = Instant::now();
            let ops = f();
            samples[i].push(ns(t.elapsed()) / ops.max(1) as f64);
        }
    }
    let ratios = samples
        .iter()
        .map(|s| {
            let r = s.iter().zip(&samples[0]).map(|(x, first)| first / x).collect::<Vec<f64>>();
            Stats::of(r).median
        })
        .collect();
    (samples.into_iter().map(Stats::of).collect(), ratios)
}

/// Nanoseconds of a duration as a float.
pub(crate) fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// This machine's CPU model and the crypto-relevant flags (`aes`, `pclmulqdq`, `sha_ni`, `vaes`,
/// `avx2`, `avx512f`), from /proc/cpuinfo; the anchors differ by these.
pub fn cpu_summary() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let flags: Vec<&str> = info
        .lines()
        .find_map(|l| l.strip_prefix("flags").and_then(|r| r.split_once(':')))
        .map(|(_, f)| f.split_whitespace().collect())
        .unwrap_or_default();
    let wanted = ["aes", "pclmulqdq", "sha_ni", "vaes", "vpclmulqdq", "avx2", "avx512f"];
    let have: Vec<&str> = wanted.iter().copied().filter(|w| flags.contains(w)).collect();
    format!("{model}, {cpus} CPUs, flags: {}", have.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_median_and_percentiles() {
        let s = Stats::of((1..=10).map(f64::from).collect());
        assert_eq!(s.median, 5.5);
        assert_eq!(s.p10, 1.0);
        assert_eq!(s.p90, 9.0);
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert_eq!(Stats::of(vec![3.0]).median, 3.0);
    }

    #[test]
    fn json_keeps_field_names_and_numbers() {
        let m =
            Measurement::new("crypter", "x").field("bytes", 1024.0).field("median_ns", 12.345678);
        let j = m.to_json();
        assert_eq!(j["bytes"], 1024);
        assert_eq!(j["median_ns"].as_f64(), Some(12.346));
        assert_eq!(j["bench"], "crypter");
    }
}
