//! chatterbox-loadtest: a load generator for the chatterbox chat server whose
//! latency numbers can be trusted.
//!
//! * Open-loop: publishers send on a fixed schedule and stamp each message with
//!   its *scheduled* time; receivers time every delivery from that stamp, so
//!   server stalls are never hidden by a stalled sender (coordinated omission).
//! * Exact: every message is owed to every member of its room, the sender
//!   included; after a drain period, whatever has not arrived is lost.
//! * Joins too: the `joins` scenario releases joins on a fixed schedule into
//!   rooms seeded with history and times each from its scheduled time to the
//!   joiner's `presence` (see [`joins`]).
//! * Cheap: receivers scan raw frames instead of parsing JSON and record into a
//!   few sharded histograms, because the generator shares the machine with the
//!   server it measures.
//!
//! The binary is a thin wrapper around [`run`].

pub mod abuse;
pub mod accounting;
pub mod churn;
pub mod cli;
pub mod client;
pub mod frame;
pub mod identity;
pub mod joins;
pub mod measure;
pub mod member;
pub mod payload;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod report;
pub mod resources;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod seed;
pub mod server_probe;
pub mod slo;
pub mod slo_run;
pub mod stats;

pub use cli::{Options, Scenario, SloAxis};
pub use report::{Report, RunResult};

/// Runs what `opts` asks for: one scenario run, or an `--slo` search of runs.
/// Writes the `--plot` file if requested; printing is left to the caller.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let report = match opts.slo {
        Some(slo) => slo_run::search(opts, slo).await?,
        None => Report {
            result: scenario::run_once(opts.clone()).await?,
            options: opts,
            slo: None,
        },
    };
    if let Some(path) = &report.options.plot {
        write_plot(&report, path)?;
    }
    Ok(report)
}

/// Plots delivery latency (every probe of a search, or the single run); for
/// scenarios without deliveries, the connect/join/reconnect times instead.
fn write_plot(report: &Report, path: &std::path::Path) -> anyhow::Result<()> {
    use plot::Series;
    let r = &report.result;
    let rooms = format!(
        "{} room{}",
        r.plan.rooms,
        if r.plan.rooms == 1 { "" } else { "s" }
    );
    let title = match r.scenario {
        Scenario::Joins => format!(
            "chatterbox joins: {rooms}, pool of {}, {} messages of history",
            r.plan.clients, r.seed_history
        ),
        _ => format!(
            "chatterbox {:?}: {rooms} × {} members, {} B texts",
            r.scenario, r.plan.members, r.message_size
        ),
    };
    let mut series = vec![];
    if let Some(slo) = &report.slo {
        for p in &slo.probes {
            series.push(Series {
                label: format!(
                    "{:.1} {} {}",
                    p.value,
                    match (slo.axis, r.scenario) {
                        (SloAxis::Rate, Scenario::Joins) => "joins/s",
                        (SloAxis::Rate, _) => "msg/s",
                        (SloAxis::Members, _) => "members",
                    },
                    if p.pass { "pass" } else { "fail" }
                ),
                histogram: &p.pooled,
            });
        }
    } else if r.scenario == Scenario::Joins {
        series.push(Series {
            label: format!(
                "join, {} joins/s, from the schedule",
                r.join_rate.unwrap_or_default()
            ),
            histogram: &r.histograms.join,
        });
    } else if !r.histograms.delivery.is_empty() {
        series.push(Series {
            label: format!("delivery, {} msg/s per publisher", r.rate),
            histogram: &r.histograms.delivery,
        });
    } else {
        let h = &r.histograms;
        for (label, hist) in [
            ("connect", &h.connect),
            ("join", &h.join),
            ("reconnect", &h.reconnect),
        ] {
            series.push(Series {
                label: label.into(),
                histogram: hist,
            });
        }
    }
    plot::write_svg(path, &title, &series)
}
