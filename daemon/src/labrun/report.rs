//! Records (one per ceremony), the run summary (success rate, per-stage p50/p95/max, failures
//! by stage), the comparison of two runs, and the JUnit XML rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// What happened in one ceremony of one step in one iteration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// 1-based iteration.
    pub iteration: u32,
    /// Step name.
    pub step: String,
    /// `register` / `authenticate`.
    pub action: String,
    /// `usb` / `hybrid` / `linked`.
    pub transport: String,
    /// The key (hidraw path or `udp:` address) or phone (virtual phone name, link, tunnel host).
    pub device: Option<String>,
    /// The authenticator model (registration; authentications carry the registration's).
    pub aaguid: Option<String>,
    /// Its friendly name, when known.
    pub authenticator_name: Option<String>,
    /// Milliseconds per finished stage, in order.
    pub timings_ms: BTreeMap<String, u64>,
    /// Milliseconds from start to result or error.
    pub total_ms: u64,
    /// `success` / `error`.
    pub outcome: String,
    /// The stage in progress when it failed.
    pub failure_stage: Option<String>,
    /// The error message.
    pub error: Option<String>,
    /// The result's `policy` object (`verdict`, `profile`, `reasons`), with a policy.
    pub policy: Option<serde_json::Value>,
    /// What the step expected (`success`, `error`, `accept`, `reject`).
    pub expect: String,
    /// Whether it was met.
    pub expectation_met: bool,
    /// Why not, when not.
    pub expectation_detail: Option<String>,
}

/// Latency of one stage over a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageStats {
    /// Stage name.
    pub stage: String,
    /// Ceremonies that finished the stage.
    pub count: usize,
    /// Median, ms (nearest rank).
    pub p50_ms: u64,
    /// 95th percentile, ms (nearest rank).
    pub p95_ms: u64,
    /// Maximum, ms.
    pub max_ms: u64,
}

/// The whole run in numbers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Ceremonies run.
    pub ceremonies: usize,
    /// Ceremonies that succeeded.
    pub successes: usize,
    /// successes / ceremonies (0 with none).
    pub success_rate: f64,
    /// Expectations met.
    pub expectations_met: usize,
    /// Expectations not met.
    pub expectations_failed: usize,
    /// Per stage, in first-seen order.
    pub stages: Vec<StageStats>,
    /// Failed ceremonies per failure stage.
    pub failures_by_stage: BTreeMap<String, usize>,
    /// `total_ms` over every ceremony.
    pub total: StageStats,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn stats(stage: &str, mut values: Vec<u64>) -> StageStats {
    values.sort_unstable();
    StageStats {
        stage: stage.to_owned(),
        count: values.len(),
        p50_ms: percentile(&values, 0.50),
        p95_ms: percentile(&values, 0.95),
        max_ms: values.last().copied().unwrap_or(0),
    }
}

/// Ceremony stages in the order the engine runs them; others sort after, by name.
const STAGE_ORDER: [&str; 12] = [
    "setup",
    "qr_shown",
    "advert",
    "tunnel_connect",
    "handshake",
    "post_handshake",
    "device_select",
    "keepalive_processing",
    "user_presence",
    "user_response",
    "linking",
    "done",
];

fn stage_rank(s: &str) -> usize {
    STAGE_ORDER.iter().position(|x| *x == s).unwrap_or(STAGE_ORDER.len())
}

impl Summary {
    /// Summarises `records`.
    pub fn of(records: &[Record]) -> Summary {
        let mut per_stage: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut failures_by_stage = BTreeMap::new();
        for r in records {
            for (stage, ms) in &r.timings_ms {
                per_stage.entry(stage).or_default().push(*ms);
            }
            if r.outcome != "success" {
                let stage = r.failure_stage.clone().unwrap_or_else(|| "unknown".to_owned());
                *failures_by_stage.entry(stage).or_insert(0) += 1;
            }
        }
        let mut stages: Vec<StageStats> = per_stage.into_iter().map(|(s, v)| stats(s, v)).collect();
        stages.sort_by(|a, b| {
            stage_rank(&a.stage).cmp(&stage_rank(&b.stage)).then(a.stage.cmp(&b.stage))
        });
        let successes = records.iter().filter(|r| r.outcome == "success").count();
        let met = records.iter().filter(|r| r.expectation_met).count();
        #[allow(clippy::cast_precision_loss)]
        let success_rate =
            if records.is_empty() { 0.0 } else { successes as f64 / records.len() as f64 };
        Summary {
            ceremonies: records.len(),
            successes,
            success_rate,
            expectations_met: met,
            expectations_failed: records.len() - met,
            stages,
            failures_by_stage,
            total: stats("total", records.iter().map(|r| r.total_ms).collect()),
        }
    }

    /// The human table printed after a run and by `runs show`.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ceremonies {}  succeeded {}  success rate {:.1}%  expectations met {}/{}",
            self.ceremonies,
            self.successes,
            self.success_rate * 100.0,
            self.expectations_met,
            self.ceremonies
        );
        let _ =
            writeln!(out, "{:<22} {:>6} {:>9} {:>9} {:>9}", "stage", "count", "p50", "p95", "max");
        for s in self.stages.iter().chain(std::iter::once(&self.total)) {
            let _ = writeln!(
                out,
                "{:<22} {:>6} {:>7}ms {:>7}ms {:>7}ms",
                s.stage, s.count, s.p50_ms, s.p95_ms, s.max_ms
            );
        }
        if !self.failures_by_stage.is_empty() {
            let list: Vec<String> =
                self.failures_by_stage.iter().map(|(s, n)| format!("{s} {n}")).collect();
            let _ = writeln!(out, "failures by stage: {}", list.join(", "));
        }
        out
    }
}

/// One stage's latency in two runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageDelta {
    /// Stage name (`total` for the whole ceremony).
    pub stage: String,
    /// p50 in run A / run B (None: the stage did not occur).
    pub p50_a: Option<u64>,
    /// p50 in B.
    pub p50_b: Option<u64>,
    /// B − A.
    pub p50_delta: Option<i64>,
    /// p95 in A.
    pub p95_a: Option<u64>,
    /// p95 in B.
    pub p95_b: Option<u64>,
    /// B − A.
    pub p95_delta: Option<i64>,
}

/// `runs compare A B`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// Run A's id.
    pub a: i64,
    /// Run B's id.
    pub b: i64,
    /// Success rate of A.
    pub success_rate_a: f64,
    /// Success rate of B.
    pub success_rate_b: f64,
    /// B − A (fraction, not percentage points).
    pub success_rate_delta: f64,
    /// Per stage, then `total`.
    pub stages: Vec<StageDelta>,
}

fn delta(a: Option<u64>, b: Option<u64>) -> Option<i64> {
    let (a, b) = (i64::try_from(a?).ok()?, i64::try_from(b?).ok()?);
    Some(b - a)
}

impl Comparison {
    /// Compares two summaries.
    pub fn of(a_id: i64, a: &Summary, b_id: i64, b: &Summary) -> Comparison {
        let mut names: Vec<&str> = a.stages.iter().map(|s| s.stage.as_str()).collect();
        for s in &b.stages {
            if !names.contains(&s.stage.as_str()) {
                names.push(&s.stage);
            }
        }
        names.sort_by(|x, y| stage_rank(x).cmp(&stage_rank(y)).then(x.cmp(y)));
        let find = |sum: &Summary, n: &str| sum.stages.iter().find(|s| s.stage == n).cloned();
        let row = |n: &str, sa: Option<StageStats>, sb: Option<StageStats>| {
            let (p50_a, p50_b) = (sa.as_ref().map(|s| s.p50_ms), sb.as_ref().map(|s| s.p50_ms));
            let (p95_a, p95_b) = (sa.as_ref().map(|s| s.p95_ms), sb.as_ref().map(|s| s.p95_ms));
            StageDelta {
                stage: n.to_owned(),
                p50_a,
                p50_b,
                p50_delta: delta(p50_a, p50_b),
                p95_a,
                p95_b,
                p95_delta: delta(p95_a, p95_b),
            }
        };
        let mut stages: Vec<StageDelta> =
            names.iter().map(|n| row(n, find(a, n), find(b, n))).collect();
        stages.push(row("total", Some(a.total.clone()), Some(b.total.clone())));
        Comparison {
            a: a_id,
            b: b_id,
            success_rate_a: a.success_rate,
            success_rate_b: b.success_rate,
            success_rate_delta: b.success_rate - a.success_rate,
            stages,
        }
    }

    /// The human table.
    pub fn to_human(&self) -> String {
        let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}ms"));
        let signed = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:+}ms"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "run {} → run {}: success rate {:.1}% → {:.1}% ({:+.1} points)",
            self.a,
            self.b,
            self.success_rate_a * 100.0,
            self.success_rate_b * 100.0,
            self.success_rate_delta * 100.0
        );
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "stage",
            format!("p50 #{}", self.a),
            format!("p50 #{}", self.b),
            "Δp50",
            format!("p95 #{}", self.a),
            format!("p95 #{}", self.b),
            "Δp95"
        );
        for s in &self.stages {
            let _ = writeln!(
                out,
                "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                s.stage,
                show(s.p50_a),
                show(s.p50_b),
                signed(s.p50_delta),
                show(s.p95_a),
                show(s.p95_b),
                signed(s.p95_delta)
            );
        }
        out
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one `<testcase>` per step per iteration; an unmet expectation is a `<failure>`.
pub fn junit_xml(scenario: &str, records: &[Record]) -> String {
    let failures = records.iter().filter(|r| !r.expectation_met).count();
    #[allow(clippy::cast_precision_loss)]
    let secs = |ms: u64| ms as f64 / 1000.0;
    let total: u64 = records.iter().map(|r| r.total_ms).sum();
    let name = xml_escape(scenario);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{name}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        records.len(),
        secs(total)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">",
        records.len(),
        secs(total)
    );
    for r in records {
        let _ = write!(
            out,
            "    <testcase classname=\"{name}.{}\" name=\"iteration {}: {} ({} over {})\" time=\"{:.3}\"",
            xml_escape(&r.step),
            r.iteration,
            xml_escape(&r.step),
            r.action,
            r.transport,
            secs(r.total_ms)
        );
        if r.expectation_met {
            out.push_str("/>\n");
            continue;
        }
        let detail = r.expectation_detail.as_deref().unwrap_or("expectation not met");
        let _ = writeln!(
            out,
            ">\n      <failure message=\"{}\" type=\"expectation\">outcome {}; failure stage {}; error {}</failure>\n    </testcase>",
            xml_escape(detail),
            r.outcome,
            r.failure_stage.as_deref().unwrap_or("-"),
            xml_escape(r.error.as_deref().unwrap_or("-"))
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(ms: &[(&str, u64)], ok: bool) -> Record {
        Record {
            iteration: 1,
            step: "s<1>".into(),
            action: "register".into(),
            transport: "usb".into(),
            device: None,
            aaguid: None,
            authenticator_name: None,
            timings_ms: ms.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect(),
            total_ms: ms.iter().map(|(_, v)| v).sum(),
            outcome: if ok { "success" } else { "error" }.into(),
            failure_stage: (!ok).then(|| "user_presence".to_owned()),
            error: None,
            policy: None,
            expect: "success".into(),
            expectation_met: ok,
            expectation_detail: (!ok).then(|| "wanted success, got error".to_owned()),
        }
    }

    #[test]
    fn percentiles_and_failures() {
        let records: Vec<Record> =
            (1..=20).map(|i| record(&[("setup", i), ("device_select", 100)], i != 7)).collect();
        let s = Summary::of(&records);
        assert_eq!(s.stages[0].stage, "setup");
        assert_eq!((s.stages[0].p50_ms, s.stages[0].p95_ms, s.stages[0].max_ms), (10, 19, 20));
        assert_eq!(s.failures_by_stage.get("user_presence"), Some(&1));
        assert!((s.success_rate - 0.95).abs() < 1e-9);
        let c = Comparison::of(1, &s, 2, &Summary::of(&records[..10]));
        assert_eq!(c.stages[0].p50_delta, Some(-5));
        assert_eq!(c.stages.last().unwrap().stage, "total");
    }

    #[test]
    fn junit_escapes_and_counts_failures() {
        let xml = junit_xml("a&b", &[record(&[("setup", 1)], true), record(&[], false)]);
        assert!(xml.contains("failures=\"1\""));
        assert!(xml.contains("name=\"a&amp;b\""));
        assert!(xml.contains("s&lt;1&gt;"));
        assert_eq!(xml.matches("<testcase").count(), 2);
        assert_eq!(xml.matches("<failure").count(), 1);
    }
}
