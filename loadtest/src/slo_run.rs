//! Drives an `--slo` search: one full scenario run per probe.

use anyhow::Result;

use crate::{
    cli::{Options, Scenario, SloAxis},
    report::{Probe, Report, RunResult, SloOutcome},
    resources::{fd_hard_limit, FD_HEADROOM},
    scenario::run_once,
    slo::{Search, Slo},
    stats::{new_histogram, Summary},
};

/// Searches for the highest rate (or room size) meeting `slo` with zero loss,
/// printing each probe to stderr as it completes.
pub async fn search(opts: Options, slo: Slo) -> Result<Report> {
    let joins = opts.scenario == Scenario::Joins;
    let mut search = match opts.slo_over {
        SloAxis::Rate if joins => Search::new(opts.join_rate, 0.1, 1e6, opts.slo_precision, false),
        SloAxis::Rate => Search::new(opts.rate, 0.1, 1e6, opts.slo_precision, false),
        SloAxis::Members if joins => {
            anyhow::bail!(
                "--slo-over members does not apply to the joins scenario; use rate (joins/s)"
            )
        }
        SloAxis::Members => {
            let start = f64::from(opts.members.unwrap_or(opts.clients));
            Search::new(start, 1.0, max_members(&opts), 0.0, true)
        }
    }
    .with_max_probes(opts.slo_max_probes);
    let mut probes: Vec<Probe> = vec![];
    while let Some(value) = search.next_probe() {
        let probe = run_probe(&opts, &slo, value).await?;
        let (what, count) = if joins {
            ("failed joins", probe.result.counters.total_errors())
        } else {
            ("lost", probe.result.lost)
        };
        eprintln!(
            "probe {:>2}: {value:>10.1} → p{}={:.2} ms over {} run(s), {what} {count} → {} {}",
            probes.len() + 1,
            slo.percentile,
            probe.observed_ms,
            probe.runs,
            if probe.pass { "PASS" } else { "FAIL" },
            probe.reason,
        );
        search.record(value, probe.pass);
        probes.push(probe);
    }
    let best = search.verdict();
    let shown = probes
        .iter()
        .filter(|p| Some(p.value) == best)
        .chain(probes.last())
        .next()
        .map(|p| p.result.clone())
        .ok_or_else(|| anyhow::anyhow!("the SLO search ran no probe"))?;
    Ok(Report {
        options: opts.clone(),
        result: shown,
        slo: Some(SloOutcome {
            slo,
            axis: opts.slo_over,
            probes,
            best,
            lowest_fail: search.lowest_fail(),
        }),
    })
}

/// Runs `--slo-runs` runs at `value` and judges them together: the
/// percentile of all their deliveries pooled, and any loss in any run. Several
/// runs per probe keep one noisy run on a shared machine from steering the search.
async fn run_probe(opts: &Options, slo: &Slo, value: f64) -> Result<Probe> {
    let mut runs = vec![];
    for _ in 0..opts.slo_runs.max(1) {
        runs.push(run_once(probe_options(opts, value)).await?);
    }
    let mut pooled = new_histogram();
    for r in &runs {
        pooled.add(judged(r)).expect("same bounds");
    }
    let observed_ms = Summary::at_percentile(&pooled, slo.percentile);
    let mut why = vec![];
    if pooled.is_empty() {
        why.push(match opts.scenario {
            Scenario::Joins => "no joins measured".to_string(),
            _ => "no deliveries measured".to_string(),
        });
    }
    let target_ms = slo.target.as_secs_f64() * 1000.0;
    if observed_ms > target_ms {
        why.push(format!(
            "p{} {observed_ms:.2} ms > {target_ms} ms",
            slo.percentile
        ));
    }
    for r in &runs {
        why.extend(faults(r));
    }
    let at = |r: &RunResult| Summary::at_percentile(judged(r), slo.percentile);
    runs.sort_by(|a, b| at(a).total_cmp(&at(b)));
    let n = runs.len();
    Ok(Probe {
        value,
        pass: why.is_empty(),
        observed_ms,
        reason: why.join(", "),
        runs: n,
        latency_pooled: Summary::of(&pooled),
        result: runs.swap_remove(n / 2),
        pooled,
    })
}

/// The histogram an objective is judged on: joins for `joins`, else deliveries.
pub fn judged(r: &RunResult) -> &hdrhistogram::Histogram<u64> {
    match r.scenario {
        Scenario::Joins => &r.histograms.join,
        _ => &r.histograms.delivery,
    }
}

/// What besides latency fails a run: loss, gaps, disconnects, failed joins
/// (joins scenario: any error, e.g. a join that timed out or lacked history).
pub fn faults(r: &RunResult) -> Vec<String> {
    let mut why = vec![];
    if r.scenario == Scenario::Joins && r.counters.total_errors() > 0 {
        why.push(format!("{} failed joins", r.counters.total_errors()));
    }
    if r.lost > 0 {
        why.push(format!("{} lost", r.lost));
    }
    if r.counters.gap_frames > 0 {
        why.push(format!("{} gap frames", r.counters.gap_frames));
    }
    if r.counters.disconnects > 0 {
        why.push(format!("{} disconnects", r.counters.disconnects));
    }
    if r.joined < u64::from(r.plan.clients) {
        why.push(format!("only {}/{} joined", r.joined, r.plan.clients));
    }
    why
}

/// The options for one probe at `value` on the search axis.
pub fn probe_options(opts: &Options, value: f64) -> Options {
    let mut o = opts.clone();
    o.slo = None;
    o.plot = None;
    match opts.slo_over {
        SloAxis::Rate if opts.scenario == Scenario::Joins => o.join_rate = value,
        SloAxis::Rate => o.rate = value,
        SloAxis::Members => {
            let members = value as u32;
            o.members = Some(members);
            o.clients = match opts.scenario {
                Scenario::Fanout => members,
                _ => opts.rooms.unwrap_or(1).max(1) * members,
            };
        }
    }
    o
}

/// Largest room size whose connections fit this process's descriptor limit.
fn max_members(opts: &Options) -> f64 {
    let hard = fd_hard_limit();
    let rooms = match opts.scenario {
        Scenario::Fanout => 1,
        _ => u64::from(opts.rooms.unwrap_or(1).max(1)),
    };
    (hard.saturating_sub(FD_HEADROOM) / rooms).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_vary_only_the_axis() {
        let mut o = Options {
            slo: Some("p99=50ms".parse().unwrap()),
            ..Options::default()
        };
        let p = probe_options(&o, 250.0);
        assert_eq!((p.rate, p.slo), (250.0, None));
        o.scenario = Scenario::Joins;
        let p = probe_options(&o, 800.0);
        assert_eq!((p.rate, p.join_rate), (o.rate, 800.0));
        o.scenario = Scenario::Fanout;
        o.slo_over = SloAxis::Members;
        let p = probe_options(&o, 300.0);
        assert_eq!((p.clients, p.members), (300, Some(300)));
        o.scenario = Scenario::Rooms;
        o.rooms = Some(20);
        let p = probe_options(&o, 5.0);
        assert_eq!((p.clients, p.members), (100, Some(5)));
        assert!(max_members(&o) >= 1.0);
    }
}
