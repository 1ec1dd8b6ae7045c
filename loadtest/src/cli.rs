//! Command-line options (also the library's configuration: tests build them
//! with [`Options::parse_from`] or [`Options::default`] and set fields).

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::slo::Slo;

/// What kind of load to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One big room: every message goes to every client.
    Fanout,
    /// Many small rooms (`--members` each), each with its own publishers.
    Rooms,
    /// Idle joined connections held for the duration; measures memory per connection.
    Idle,
    /// Clients loop connect → join → leave → disconnect.
    Churn,
    /// All clients drop at once and reconnect; measures reconnect + join time.
    ReconnectStorm,
    /// Open-loop joins at --join-rate into rooms seeded with history, by a pool
    /// of --clients connected clients (join → history + presence → leave, reused).
    Joins,
}

/// Which load axis `--slo` searches over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SloAxis {
    /// Messages per second per publisher (`joins`: joins per second, --join-rate).
    Rate,
    /// Members per room.
    Members,
}

/// Load generator for chatterbox with coordinated-omission-free latency histograms.
///
/// Every delivery at every receiver is timed from the message's *scheduled*
/// send time on a fixed open-loop schedule, so a server stall shows up in the
/// latency even when it also stalls the sender. The `joins` scenario times
/// joins the same way: from each join's scheduled time to the joiner's
/// `presence` frame (after its `history`), e.g.
/// `--scenario joins --join-rate 1000 --seed-history 50`.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "chatterbox-loadtest", version, about, long_about)]
pub struct Options {
    /// WebSocket endpoint of the server (the generator appends `?user=NAME`).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,

    /// Scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    pub scenario: Scenario,

    /// Total WebSocket connections (one user each). `joins`: the pool of joiners.
    #[arg(long, short = 'c', default_value_t = 100)]
    pub clients: u32,

    /// Number of rooms; clients are split evenly. Ignored by `fanout` (always 1).
    /// `joins`: rooms the joins go to, round-robin (default 1).
    #[arg(long)]
    pub rooms: Option<u32>,

    /// Members per room (overrides --rooms). `fanout`: the room size, i.e. --clients.
    /// Defaults: rooms 10, idle 100, churn 10, reconnect-storm 100.
    #[arg(long)]
    pub members: Option<u32>,

    /// Publishing members in each room (fanout, rooms). Defaults to 1.
    #[arg(long)]
    pub publishers: Option<u32>,

    /// Messages per second per publisher, on a fixed open-loop schedule.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,

    /// Measured duration (after warm-up).
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub duration: Duration,

    /// Warm-up before measuring: messages scheduled then are sent and counted
    /// for loss but not recorded in the latency histogram.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,

    /// Longest wait after the last scheduled send for outstanding deliveries
    /// before counting them as lost.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub drain: Duration,

    /// Chat text size in bytes (the header `lt <pub> <seq> <nanos>` is never cut).
    #[arg(long, default_value_t = 100)]
    pub message_size: usize,

    /// New connections started per second while ramping up (0 = no limit).
    #[arg(long, default_value_t = 1000.0)]
    pub ramp_rate: f64,

    /// Most connection handshakes (connect + join) in flight at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,

    /// Per-attempt timeout for connect and for join.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub connect_timeout: Duration,

    /// Token mode: connect every client with this token (they all become its user).
    #[arg(long, conflicts_with = "auth_secret")]
    #[serde(skip)]
    pub token: Option<String>,

    /// Token mode: mint an HS256 token per client for its own name with this secret (the
    /// server's AUTH_SECRET).
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    #[serde(skip)]
    pub auth_secret: Option<String>,

    /// Ask for resume tickets and present them when reconnecting (reconnect-storm), so the
    /// server admits reconnects ahead of new arrivals.
    #[arg(long)]
    pub resume: bool,

    /// Local addresses to bind client sockets to, round-robin (e.g.
    /// 127.0.0.1,127.0.0.2,…): each gives another ~28k ephemeral ports.
    #[arg(long, value_delimiter = ',')]
    pub source_addrs: Vec<IpAddr>,

    /// How long a churn client stays joined per cycle.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub churn_hold: Duration,

    /// Number of reconnect storms (reconnect-storm scenario), spread over --duration.
    #[arg(long, default_value_t = 1)]
    pub storms: u32,

    /// Joins per second over all rooms (joins scenario), on a fixed open-loop
    /// schedule: each join is timed from its scheduled time to our `presence`.
    #[arg(long, default_value_t = 1000.0)]
    pub join_rate: f64,

    /// Chat messages sent into each room (and echoed back) before the ramp, so
    /// joins carry a `history` frame. Default: 50 for `joins`, 0 otherwise.
    #[arg(long)]
    pub seed_history: Option<u32>,

    /// Joins scenario: no resident member per room. By default the seeding
    /// connection stays in its room, so the room (and its in-memory history)
    /// stays alive; without it a join may find the room empty and load its
    /// history from the store.
    #[arg(long)]
    pub no_anchor: bool,

    /// Search for the highest load meeting this objective with zero loss, e.g. p99=50ms.
    #[arg(long)]
    pub slo: Option<Slo>,

    /// What the --slo search varies.
    #[arg(long, value_enum, default_value_t = SloAxis::Rate)]
    pub slo_over: SloAxis,

    /// Most probes the --slo search runs.
    #[arg(long, default_value_t = 12)]
    pub slo_max_probes: u32,

    /// Runs per --slo probe, judged on their deliveries pooled (loss in any run fails it).
    #[arg(long, default_value_t = 1)]
    pub slo_runs: u32,

    /// Stop bisecting once the failing and passing rate are within this fraction.
    #[arg(long, default_value_t = 0.05)]
    pub slo_precision: f64,

    /// PID of a local server: sample its CPU and RSS from /proc (exact, no scrape).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Prometheus endpoint of the server (default: http://<url host:port>/metrics).
    #[arg(long)]
    pub metrics_url: Option<String>,

    /// Print the result as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Write a latency-by-percentile plot (SVG) to this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// Runtime worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,

    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Run hostile clients beside the measured ones (see `abuse`): a flood into the first room,
    /// amplifying joins, unread REST pages, room squatting and half-sent oversized heads.
    #[arg(long)]
    pub attack: bool,

    /// Source addresses of the attackers (distinct from --source-addrs, so per-address limits
    /// aimed at them leave the measured clients alone).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9"
    )]
    pub attack_addrs: Vec<IpAddr>,

    /// Which attackers `--attack` runs.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "flood,amplify,held-page,squat,oversized-head"
    )]
    pub attackers: Vec<crate::abuse::Attacker>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for Options {
    fn default() -> Self {
        Self::parse_from(["chatterbox-loadtest"])
    }
}

impl Options {
    /// Chat messages to seed into each room before the run.
    pub fn seed_history(&self) -> u32 {
        self.seed_history
            .unwrap_or(if self.scenario == Scenario::Joins {
                50
            } else {
                0
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Options::command().debug_assert();
    }

    #[test]
    fn parses_a_full_command_line() {
        let o = Options::try_parse_from([
            "x",
            "--scenario",
            "reconnect-storm",
            "-c",
            "500",
            "--duration",
            "1m",
            "--source-addrs",
            "127.0.0.1,127.0.0.2",
            "--slo",
            "p99.9=20ms",
            "--slo-over",
            "members",
        ])
        .unwrap();
        assert_eq!(o.scenario, Scenario::ReconnectStorm);
        assert_eq!(o.clients, 500);
        assert_eq!(o.duration, Duration::from_secs(60));
        assert_eq!(o.source_addrs.len(), 2);
        assert_eq!(o.slo.unwrap().percentile, 99.9);
        assert_eq!(o.slo_over, SloAxis::Members);
        let d = Options::default();
        assert_eq!(d.url, "ws://127.0.0.1:8080/ws");
        assert_eq!(d.message_size, 100);
        assert_eq!(d.seed_history(), 0);
    }

    #[test]
    fn joins_seed_history_by_default() {
        let o =
            Options::try_parse_from(["x", "--scenario", "joins", "--join-rate", "250"]).unwrap();
        assert_eq!((o.scenario, o.join_rate), (Scenario::Joins, 250.0));
        assert_eq!(o.seed_history(), 50);
        let o =
            Options::try_parse_from(["x", "--scenario", "joins", "--seed-history", "0"]).unwrap();
        assert_eq!(o.seed_history(), 0);
        let o = Options::try_parse_from(["x", "--seed-history", "7"]).unwrap();
        assert_eq!(o.seed_history(), 7);
    }
}
