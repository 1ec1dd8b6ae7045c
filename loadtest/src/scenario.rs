//! Runs one scenario once: ramp up, run the measured window, drain, tear down,
//! and turn the shards into a [`RunResult`].

use std::{
    sync::{
        atomic::{AtomicU32, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use tokio::{
    sync::{mpsc, watch, Mutex, Semaphore},
    task::JoinHandle,
};

use crate::{
    abuse::Attack,
    churn::churner,
    cli::{Options, Scenario},
    client::Connector,
    identity::Identity,
    joins::{joiner, start_scheduler, Queue},
    measure::{Resources, Snapshot},
    member::member,
    plan::Plan,
    progress::{self, Ticker},
    report::{Histograms, RunResult},
    resources::raise_fd_limit,
    runner::{join_all, Control, Live, RunCtx},
    schedule::Schedule,
    seed::seed_rooms,
    server_probe::ServerProbe,
    stats::{Recorder, Summary},
};

/// Lead time between the end of the ramp and the first scheduled send, so
/// every task has seen the start signal before anything is due.
const START_LEAD: Duration = Duration::from_millis(100);

/// Runs `opts.scenario` once (no SLO search).
pub async fn run_once(opts: Options) -> Result<RunResult> {
    let plan = Plan::new(&opts, Plan::fresh_tag())?;
    // The pool, plus one seeding/anchoring connection per room when there are any.
    let per_room_extra =
        opts.seed_history() > 0 || (opts.scenario == Scenario::Joins && !opts.no_anchor);
    raise_fd_limit(u64::from(plan.clients) + u64::from(per_room_extra) * u64::from(plan.rooms))?;
    let connector = Connector::new(&opts.url, opts.source_addrs.clone(), opts.connect_timeout)
        .await?
        .with_identity(Identity::new(
            opts.token.as_deref(),
            opts.auth_secret.as_deref(),
        )?);
    let connector = if opts.resume {
        connector.with_resume()
    } else {
        connector
    };
    let probe = ServerProbe::new(opts.server_pid, &opts.url, opts.metrics_url.as_deref());
    let (control_tx, control_rx) = watch::channel(Control::Ramp);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ctx = Arc::new(RunCtx {
        permits: Semaphore::new(opts.connect_concurrency.max(1)),
        room_members: (0..plan.rooms).map(|_| AtomicU32::new(0)).collect(),
        recorder: Recorder::new(cores * 4),
        live: Live::default(),
        clock: crate::runner::Clock::new(),
        control: control_rx,
        connector,
        plan,
        opts,
    });
    let joins = ctx.opts.scenario == Scenario::Joins;
    let anchor = joins && !ctx.opts.no_anchor;
    let seed = ctx.opts.seed_history();
    let anchors = if seed > 0 || anchor {
        seed_rooms(&ctx, seed, anchor).await?
    } else {
        vec![]
    };
    let idle = Snapshot::take(&probe, 0).await;
    let ramp_start = Instant::now();
    match ctx.opts.scenario {
        Scenario::Churn => return run_churn(ctx, control_tx, probe, idle).await,
        Scenario::Joins => return run_joins(ctx, control_tx, probe, idle, anchors).await,
        _ => {}
    }
    let ramp_bar = progress::bar(ctx.opts.quiet, u64::from(ctx.plan.clients), "joining");
    let handles = {
        let c = ctx.clone();
        let _ticker = Ticker::start(ramp_bar, move |b| {
            b.set_position(c.live.joined.load(Relaxed));
            b.set_message(format!("failed {}", c.live.failed.load(Relaxed)));
        });
        let handles = ctx.spawn_ramped(member).await;
        let total = u64::from(ctx.plan.clients);
        progress::wait_until(|| {
            ctx.live.joined.load(Relaxed) + ctx.live.failed.load(Relaxed) >= total
        })
        .await;
        handles
    };
    let ramp_secs = ramp_start.elapsed().as_secs_f64();
    let joined = ctx.live.joined.load(Relaxed);
    if joined == 0 {
        let _ = control_tx.send(Control::Stop);
        join_all(handles).await;
        bail!(
            "no client could connect and join: {:?}",
            ctx.recorder.merged().counters.errors
        );
    }
    // Let the server settle its per-connection allocations before measuring memory.
    let settle = if ctx.opts.scenario == Scenario::Idle {
        1000
    } else {
        200
    };
    tokio::time::sleep(Duration::from_millis(settle)).await;
    let mut loaded = Snapshot::take(&probe, 0).await;
    let attack = match ctx.opts.attack {
        true => Some(
            Attack::start(
                &ctx.opts.url,
                ctx.opts.attack_addrs.clone(),
                ctx.opts.attackers.clone(),
                ctx.plan.room_name(0),
                ctx.opts.server_pid,
            )
            .await?,
        ),
        false => None,
    };

    let t0 = Instant::now() + START_LEAD;
    let window_from = t0 + ctx.opts.warmup;
    let window_to = window_from + ctx.opts.duration;
    let measure_from = ctx.clock.unix_nanos(window_from);
    let _ = control_tx.send(Control::Run { t0, measure_from });

    let (start, end, drain_secs) = {
        let c = ctx.clone();
        let total = ctx.opts.warmup + ctx.opts.duration + START_LEAD;
        progress::timed(
            ctx.opts.quiet,
            "running",
            total,
            move || live_line(&c.live),
            async {
                tokio::time::sleep_until(window_from.into()).await;
                let start = Snapshot::take(&probe, ctx.live.delivered.load(Relaxed)).await;
                if ctx.opts.scenario == Scenario::ReconnectStorm {
                    storms(&ctx, &control_tx, window_from, joined).await;
                }
                tokio::time::sleep_until(window_to.into()).await;
                let end = Snapshot::take(&probe, ctx.live.delivered.load(Relaxed)).await;
                let drain_secs = drain(&ctx).await;
                (start, end, drain_secs)
            },
        )
        .await
    };
    if ctx.opts.scenario == Scenario::Idle {
        // Idle memory is what the server holds after the hold period, not just after the ramp.
        loaded = end;
    }
    let attack = match attack {
        Some(attack) => Some(attack.stop().await),
        None => None,
    };
    let _ = control_tx.send(Control::Stop);
    let panicked = join_all(handles).await;
    let resources = Resources::compute(probe.describe(), &idle, &loaded, &start, &end, joined);
    let mut result = finish(&ctx, joined, ramp_secs, drain_secs, resources, panicked);
    result.attack = attack;
    Ok(result)
}

/// Waits until every owed delivery arrived or `--drain` passed; returns the wait.
async fn drain(ctx: &RunCtx) -> f64 {
    let started = Instant::now();
    let deadline = started + ctx.opts.drain;
    while ctx.live.delivered.load(Relaxed) < ctx.live.expected.load(Relaxed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed().as_secs_f64()
}

/// Fires `--storms` storms spread over the window, each waiting for every
/// client to be back (or for the connect timeout to make that impossible).
async fn storms(ctx: &RunCtx, control: &watch::Sender<Control>, from: Instant, joined: u64) {
    let n = ctx.opts.storms.max(1);
    let spacing = ctx.opts.duration / n;
    for k in 0..n {
        tokio::time::sleep_until((from + spacing * k).into()).await;
        let at = Instant::now();
        let _ = control.send(Control::Storm { n: k + 1, at });
        let target = joined * u64::from(k + 1);
        let give_up = at + ctx.opts.connect_timeout * 3 + spacing;
        while ctx.live.reconnected.load(Relaxed) < target && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Churn: clients cycle from the start; the window opens after the warm-up.
async fn run_churn(
    ctx: Arc<RunCtx>,
    control_tx: watch::Sender<Control>,
    probe: ServerProbe,
    idle: Snapshot,
) -> Result<RunResult> {
    let ramp_start = Instant::now();
    let t0 = ramp_start;
    let window_from = t0 + ctx.opts.warmup;
    let window_to = window_from + ctx.opts.duration;
    let _ = control_tx.send(Control::Run {
        t0,
        measure_from: ctx.clock.unix_nanos(window_from),
    });
    let c = ctx.clone();
    let total = ctx.opts.warmup + ctx.opts.duration;
    let (handles, start, end) = progress::timed(
        ctx.opts.quiet,
        "churning",
        total,
        move || {
            format!(
                "cycles {} failed {}",
                c.live.cycles.load(Relaxed),
                c.live.failed.load(Relaxed)
            )
        },
        async {
            let handles = ctx.spawn_ramped(churner).await;
            tokio::time::sleep_until(window_from.into()).await;
            let start = Snapshot::take(&probe, 0).await;
            tokio::time::sleep_until(window_to.into()).await;
            let end = Snapshot::take(&probe, 0).await;
            (handles, start, end)
        },
    )
    .await;
    let _ = control_tx.send(Control::Stop);
    let panicked = join_all(handles).await;
    let resources = Resources::compute(probe.describe(), &idle, &idle, &start, &end, 0);
    let ramp_secs = ramp_start.elapsed().as_secs_f64();
    Ok(finish(
        &ctx,
        u64::from(ctx.plan.clients),
        ramp_secs,
        0.0,
        resources,
        panicked,
    ))
}

/// Joins: connect the pool, then release joins on the open-loop schedule;
/// the window's snapshots count joins instead of deliveries.
async fn run_joins(
    ctx: Arc<RunCtx>,
    control_tx: watch::Sender<Control>,
    probe: ServerProbe,
    idle: Snapshot,
    anchors: Vec<JoinHandle<()>>,
) -> Result<RunResult> {
    let ramp_start = Instant::now();
    let (jobs, rx) = mpsc::unbounded_channel();
    let queue: Queue = Arc::new(Mutex::new(rx));
    let ramp_bar = progress::bar(ctx.opts.quiet, u64::from(ctx.plan.clients), "connecting");
    let handles = {
        let c = ctx.clone();
        let _ticker = Ticker::start(ramp_bar, move |b| {
            b.set_position(c.live.joined.load(Relaxed));
            b.set_message(format!("failed {}", c.live.failed.load(Relaxed)));
        });
        let q = queue.clone();
        let handles = ctx
            .spawn_ramped(move |c, conn| joiner(c, conn, q.clone()))
            .await;
        let total = u64::from(ctx.plan.clients);
        progress::wait_until(|| {
            ctx.live.joined.load(Relaxed) + ctx.live.failed.load(Relaxed) >= total
        })
        .await;
        handles
    };
    drop(queue);
    let ramp_secs = ramp_start.elapsed().as_secs_f64();
    let connected = ctx.live.joined.load(Relaxed);
    if connected == 0 {
        drop(jobs);
        let _ = control_tx.send(Control::Stop);
        join_all(handles).await;
        join_all(anchors).await;
        bail!(
            "no client could connect: {:?}",
            ctx.recorder.merged().counters.errors
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let loaded = Snapshot::take(&probe, 0).await;

    let t0 = Instant::now() + START_LEAD;
    let window_from = t0 + ctx.opts.warmup;
    let window_to = window_from + ctx.opts.duration;
    let _ = control_tx.send(Control::Run {
        t0,
        measure_from: ctx.clock.unix_nanos(window_from),
    });
    let schedule = Schedule::new(ctx.opts.join_rate, 0.0, ctx.opts.warmup + ctx.opts.duration);
    let scheduler = start_scheduler(schedule, t0, ctx.opts.warmup, jobs);

    let (start, end, drain_secs) = {
        let c = ctx.clone();
        let total = ctx.opts.warmup + ctx.opts.duration + START_LEAD;
        progress::timed(
            ctx.opts.quiet,
            "joining",
            total,
            move || {
                format!(
                    "joins {} failed {}",
                    c.live.joins.load(Relaxed),
                    c.live.join_failed.load(Relaxed)
                )
            },
            async {
                tokio::time::sleep_until(window_from.into()).await;
                let start = Snapshot::take(&probe, ctx.live.joins.load(Relaxed)).await;
                tokio::time::sleep_until(window_to.into()).await;
                let end = Snapshot::take(&probe, ctx.live.joins.load(Relaxed)).await;
                // Drain: let the pool finish what is queued, up to --drain;
                // after that the rest is counted as `join:unfinished`.
                let started = Instant::now();
                let deadline = started + ctx.opts.drain;
                while !handles.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (start, end, started.elapsed().as_secs_f64())
            },
        )
        .await
    };
    let _ = control_tx.send(Control::Stop);
    let panicked = join_all(handles).await + join_all(anchors).await;
    let _ = tokio::task::spawn_blocking(move || scheduler.join()).await;
    let resources = Resources::compute(probe.describe(), &idle, &loaded, &start, &end, connected);
    Ok(finish(
        &ctx, connected, ramp_secs, drain_secs, resources, panicked,
    ))
}

/// The live counters as one progress line.
fn live_line(live: &Live) -> String {
    let mut line = format!(
        "s sent {} delivered {}/{}",
        live.sent.load(Relaxed),
        live.delivered.load(Relaxed),
        live.expected.load(Relaxed),
    );
    let reconnected = live.reconnected.load(Relaxed);
    if reconnected > 0 {
        line.push_str(&format!(" reconnected {reconnected}"));
    }
    line
}

fn finish(
    ctx: &RunCtx,
    joined: u64,
    ramp_secs: f64,
    drain_secs: f64,
    resources: Resources,
    panicked_tasks: usize,
) -> RunResult {
    let merged = ctx.recorder.merged();
    let storm = ctx.opts.scenario == Scenario::ReconnectStorm;
    let joins = ctx.opts.scenario == Scenario::Joins;
    RunResult {
        scenario: ctx.opts.scenario,
        plan: ctx.plan.clone(),
        rate: ctx.opts.rate,
        join_rate: joins.then_some(ctx.opts.join_rate),
        seed_history: ctx.opts.seed_history(),
        anchored: joins && !ctx.opts.no_anchor,
        message_size: ctx.opts.message_size,
        joined,
        ramp_secs,
        drain_secs,
        lost: merged.counters.lost(),
        delivery: Summary::of(&merged.delivery),
        connect: Summary::of(&merged.connect),
        join: Summary::of(&merged.join),
        reconnect: storm.then(|| Summary::of(&merged.reconnect)),
        join_lag: joins.then(|| Summary::of(&merged.join_lag)),
        counters: merged.counters,
        resources,
        attack: None,
        panicked_tasks,
        histograms: Histograms {
            delivery: merged.delivery,
            connect: merged.connect,
            join: merged.join,
            join_lag: merged.join_lag,
            reconnect: merged.reconnect,
        },
    }
}
