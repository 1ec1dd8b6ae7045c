//! Results: the machine-readable [`Report`] and its human-readable table.

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{
    accounting::Counters,
    cli::{Options, Scenario, SloAxis},
    measure::Resources,
    plan::Plan,
    slo::Slo,
    stats::Summary,
};

/// The merged histograms of a run, kept for plotting (not serialised).
#[derive(Clone)]
pub struct Histograms {
    pub delivery: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub join: Histogram<u64>,
    pub join_lag: Histogram<u64>,
    pub reconnect: Histogram<u64>,
}

/// Everything one run measured.
#[derive(Clone, Serialize)]
pub struct RunResult {
    pub scenario: Scenario,
    pub plan: Plan,
    /// Messages per second per publisher.
    pub rate: f64,
    /// Joins scenario: scheduled joins per second over all rooms.
    pub join_rate: Option<f64>,
    /// Chat messages seeded into each room before the ramp.
    pub seed_history: u32,
    /// Joins scenario: each room kept a resident member (the seeder).
    pub anchored: bool,
    pub message_size: usize,
    /// Connections that joined their room during the ramp (joins scenario:
    /// pool connections that connected).
    pub joined: u64,
    pub ramp_secs: f64,
    /// How long the drain waited after the last scheduled send.
    pub drain_secs: f64,
    pub counters: Counters,
    pub lost: u64,
    /// Delivery latency from the scheduled send time (measured window).
    pub delivery: Summary,
    pub connect: Summary,
    /// `join` → `presence`; joins scenario: from the join's scheduled time.
    pub join: Summary,
    /// Joins scenario only: scheduled time → join sent (included in `join`).
    pub join_lag: Option<Summary>,
    /// Reconnect storms only: from the drop until joined again.
    pub reconnect: Option<Summary>,
    pub resources: Resources,
    /// With `--attack`: what the attackers did and what the server refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<crate::abuse::AttackReport>,
    /// Tasks that panicked (a generator bug; their data is missing).
    pub panicked_tasks: usize,
    #[serde(skip)]
    pub histograms: Histograms,
}

/// One probe of an `--slo` search.
#[derive(Clone, Serialize)]
pub struct Probe {
    pub value: f64,
    pub pass: bool,
    /// The objective's percentile over all runs of this probe pooled, in milliseconds.
    pub observed_ms: f64,
    pub reason: String,
    /// Runs at this value (`--slo-runs`).
    pub runs: usize,
    /// The judged latency (delivery; join for `joins`) of all runs pooled.
    pub latency_pooled: Summary,
    /// The run whose own percentile is the median of the runs.
    pub result: RunResult,
    #[serde(skip)]
    pub pooled: Histogram<u64>,
}

/// The outcome of an `--slo` search.
#[derive(Clone, Serialize)]
pub struct SloOutcome {
    pub slo: Slo,
    pub axis: SloAxis,
    pub probes: Vec<Probe>,
    /// Highest passing value, if any.
    pub best: Option<f64>,
    /// Lowest failing value, if any.
    pub lowest_fail: Option<f64>,
}

/// What [`crate::run`] returns: the options, the run (for `--slo`: the best
/// passing probe, or the last one if none passed), and the search.
#[derive(Clone, Serialize)]
pub struct Report {
    pub options: Options,
    pub result: RunResult,
    pub slo: Option<SloOutcome>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(slo) = &self.slo {
            write_slo(&mut out, slo, self.result.scenario);
        }
        write_run(&mut out, &self.result);
        out
    }
}

fn write_slo(out: &mut String, s: &SloOutcome, scenario: Scenario) {
    let unit = axis_unit(s.axis, scenario);
    let _ = writeln!(out, "SLO search for {} with zero loss, over {unit}", s.slo);
    for p in &s.probes {
        let _ = writeln!(
            out,
            "  {:>10.1} {unit:<12} p{}={:>9.2} ms  {}  {}",
            p.value,
            s.slo.percentile,
            p.observed_ms,
            if p.pass { "PASS" } else { "FAIL" },
            p.reason
        );
    }
    let _ = match (s.best, s.lowest_fail) {
        (Some(b), Some(f)) => writeln!(
            out,
            "verdict: {b:.1} {unit} meets the objective; {f:.1} does not\n"
        ),
        (Some(b), None) => writeln!(
            out,
            "verdict: {b:.1} {unit} meets the objective (highest probed)\n"
        ),
        (None, _) => writeln!(out, "verdict: no probed load met the objective\n"),
    };
}

/// The unit of an `--slo` axis: the rate axis of `joins` is joins per second.
pub fn axis_unit(axis: SloAxis, scenario: Scenario) -> &'static str {
    match (axis, scenario) {
        (SloAxis::Rate, Scenario::Joins) => "joins/s",
        (SloAxis::Rate, _) => "msg/s/pub",
        (SloAxis::Members, _) => "members",
    }
}

fn write_run(out: &mut String, r: &RunResult) {
    if r.scenario == Scenario::Joins {
        return write_joins(out, r);
    }
    let p = &r.plan;
    let _ = write!(
        out,
        "scenario {:?}: {} clients in {} room(s) of {}",
        r.scenario, p.clients, p.rooms, p.members
    );
    let _ = if p.publishers > 0 {
        writeln!(
            out,
            "; {} publisher(s) per room at {} msg/s, {} B texts",
            p.publishers, r.rate, r.message_size
        )
    } else {
        writeln!(out)
    };
    if r.seed_history > 0 {
        let _ = writeln!(
            out,
            "seeded {} messages of history per room",
            r.seed_history
        );
    }
    let c = &r.counters;
    let _ = writeln!(
        out,
        "joined {}/{} in {:.1}s; window {:.1}s; drain {:.2}s",
        r.joined, p.clients, r.ramp_secs, r.resources.window_secs, r.drain_secs
    );
    let _ = writeln!(
        out,
        "sent {}  expected {}  delivered {}  lost {}  duplicated {}  out-of-order {}  gaps {} (missed {})  disconnects {}",
        c.sent, c.expected, c.delivered, r.lost, c.duplicated, c.out_of_order, c.gap_frames, c.gap_missed, c.disconnects
    );
    if r.scenario == Scenario::Churn {
        let _ = writeln!(
            out,
            "churn cycles {} ({:.1}/s)",
            c.churn_cycles,
            c.churn_cycles as f64 / r.resources.window_secs.max(1e-9)
        );
        if c.unclean_closes > 0 {
            let _ = writeln!(
                out,
                "server dropped {} connection(s) without answering our close frame",
                c.unclean_closes
            );
        }
    }
    write_errors(out, c);
    latency_header(out);
    if r.delivery.count > 0 {
        latency_row(out, "delivery", &r.delivery);
    }
    latency_row(out, "connect", &r.connect);
    latency_row(out, "join", &r.join);
    if let Some(s) = &r.reconnect {
        latency_row(out, "reconnect", s);
    }
    write_resources(out, &r.resources, "deliveries", "delivery");
}

/// The joins scenario: schedule, outcome, latency from the schedule.
fn write_joins(out: &mut String, r: &RunResult) {
    let p = &r.plan;
    let c = &r.counters;
    let _ = writeln!(
        out,
        "scenario Joins: {} joins/s into {} room(s) by a pool of {} connections; \
         {} messages of history seeded per room, {}",
        r.join_rate.unwrap_or_default(),
        p.rooms,
        p.clients,
        r.seed_history,
        if r.anchored {
            "one resident member per room"
        } else {
            "no resident member"
        }
    );
    let _ = writeln!(
        out,
        "connected {}/{} in {:.1}s; window {:.1}s; drain {:.2}s",
        r.joined, p.clients, r.ramp_secs, r.resources.window_secs, r.drain_secs
    );
    let window = r.resources.window_secs.max(1e-9);
    let _ = writeln!(
        out,
        "joins scheduled {}  completed {}  achieved {:.1}/s  with history {} (mean {:.1} messages)",
        c.joins_scheduled,
        c.joins_completed,
        r.resources.window_deliveries as f64 / window,
        c.joins_with_history,
        c.history_messages as f64 / c.joins_with_history.max(1) as f64,
    );
    write_errors(out, c);
    latency_header(out);
    latency_row(out, "join", &r.join);
    if let Some(s) = &r.join_lag {
        latency_row(out, "join lag", s);
    }
    latency_row(out, "connect", &r.connect);
    write_resources(out, &r.resources, "joins", "join");
}

fn write_errors(out: &mut String, c: &Counters) {
    if !c.errors.is_empty() {
        let list: Vec<String> = c.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let _ = writeln!(out, "errors: {}", list.join("  "));
    }
}

fn latency_header(out: &mut String) {
    let _ = writeln!(
        out,
        "\n{:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency ms", "count", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
}

fn latency_row(out: &mut String, name: &str, s: &Summary) {
    let _ = writeln!(
        out,
        "{name:<11} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms, s.mean_ms
    );
}

/// One row of the resources table: a label, then the loadtest's and the server's value.
fn resource_row(out: &mut String, label: &str, loadtest: String, server: String) {
    let _ = writeln!(out, "{label:<28} {loadtest:>14} {server:>14}");
}

/// The resources table; `events`/`event` name what the window counted
/// (deliveries, or joins in the joins scenario).
fn write_resources(out: &mut String, res: &Resources, events: &str, event: &str) {
    let rate = res.window_deliveries as f64 / res.window_secs.max(1e-9);
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("n/a".to_string(), |v| format!("{v:.digits$}"));
    let kib = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1} KiB", v / 1024.0));
    let _ = writeln!(
        out,
        "\n{:<28} {:>14} {:>14}",
        format!("resources ({rate:.0} {events}/s)"),
        "loadtest",
        "server"
    );
    resource_row(
        out,
        "CPU seconds in window",
        format!("{:.2}", res.loadtest_cpu_secs),
        opt(res.server_cpu_secs, 2),
    );
    resource_row(
        out,
        "CPU % of one core",
        format!("{:.1}", res.loadtest_cpu_percent),
        opt(res.server_cpu_percent, 1),
    );
    resource_row(
        out,
        &format!("CPU µs per {event}"),
        opt(res.loadtest_cpu_us_per_delivery, 2),
        opt(res.server_cpu_us_per_delivery, 2),
    );
    resource_row(
        out,
        "RSS per connection",
        kib(res.loadtest_rss_per_connection_bytes),
        kib(res.server_rss_per_connection_bytes),
    );
    if let (Some(before), Some(after)) = (res.server_rss_before_bytes, res.server_rss_after_bytes) {
        let _ = writeln!(
            out,
            "server RSS {:.1} MiB before connecting, {:.1} MiB with the connections up",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
    }
    let _ = writeln!(out, "server numbers from {}", res.server_source);
}
