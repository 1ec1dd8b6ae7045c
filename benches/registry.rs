//! The lock-sharded room registry under contention: lookups, joins and room churn from 1, 2 and 4
//! threads, spread over many distinct rooms or all aimed at one hot room.
//!
//! Every join, leave and by-name lookup goes through the registry, so its locks are shared by every
//! connection on the server. Names hash to shards, so distinct rooms should scale with threads
//! while one hot room puts every thread on one shard lock (and one room's reference count). Three
//! operations, through the public API:
//!
//! - `lookup`: [`RoomRegistry::get`] of a live room (a shard read lock and an `Arc` clone).
//! - `join_abandon`: [`RoomRegistry::join`] of a live room, then dropping the ticket
//!   (the shard write lock twice plus the room's state lock): the registry's part of a join and a
//!   leave, without the subscription.
//! - `churn`: the same pair on rooms that do not exist yet, so every pair creates a room (its
//!   broadcast channel included) and removes it again when the join is withdrawn.
//!
//! Throughput is total operations per second over all threads.
//!
//! `cargo bench --bench registry`

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use chatterbox::rooms::{JoinTicket, RegistrySettings, RingLimits, RoomRegistry, RoomSettings};
use chatterbox::telemetry::Metrics;
use chatterbox::Config;

/// Operations per thread per measured iteration.
const OPS_PER_THREAD: u64 = 10_000;
/// Live rooms in the `distinct` case (a power of two, so the index is a mask).
const ROOMS: usize = 1024;
const THREADS: [usize; 3] = [1, 2, 4];

/// Where each thread's operations go.
#[derive(Clone, Copy)]
enum Target {
    /// Spread over `ROOMS` rooms, each thread walking them in its own order.
    Distinct,
    /// Every operation on the same room.
    Hot,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Distinct => "distinct_rooms",
            Target::Hot => "hot_room",
        }
    }

    fn index(self, thread: usize, op: u64) -> usize {
        match self {
            // A stride coprime with ROOMS visits every room; the offset desynchronises threads.
            Target::Distinct => (thread * 397 + op as usize * 7) & (ROOMS - 1),
            Target::Hot => 0,
        }
    }
}

fn registry() -> RoomRegistry {
    let config = Config::default();
    RoomRegistry::new(
        RegistrySettings {
            shards: config.rooms.resolved_shards(),
            max_rooms: 1 << 20,
            max_rooms_created_per_ip: 0,
            room: RoomSettings {
                channel_capacity: config.rooms.room_channel_capacity,
                ring: RingLimits {
                    messages: config.history.history_ring_size,
                    bytes: 1 << 20,
                },
                max_frame_bytes: config.limits.max_server_frame_bytes,
            },
        },
        Metrics::new(),
    )
}

/// Runs `op(thread, i)` for `iters * OPS_PER_THREAD` values of `i` on each of `threads` threads,
/// all released together; returns the time until the last one finishes (thread start excluded).
fn run_threads(threads: usize, iters: u64, op: &(impl Fn(usize, u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let barrier = &barrier;
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    barrier.wait();
                    for i in 0..iters * OPS_PER_THREAD {
                        op(thread, i);
                    }
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for worker in workers {
            worker.join().unwrap();
        }
        started.elapsed()
    })
}

fn registry_contention(c: &mut Criterion) {
    let names: Vec<String> = (0..ROOMS).map(|r| format!("room-{r}")).collect();
    let churn_names: Vec<String> = (0..ROOMS).map(|r| format!("churn-{r}")).collect();

    let registry = registry();
    // Keep every room alive for the whole run: one admitted join each, never withdrawn.
    let _live: Vec<JoinTicket> = names
        .iter()
        .map(|n| registry.join(n, None).unwrap())
        .collect();

    let mut group = c.benchmark_group("registry");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for threads in THREADS {
        group.throughput(Throughput::Elements(threads as u64 * OPS_PER_THREAD));
        for target in [Target::Distinct, Target::Hot] {
            let id = |op: &str| BenchmarkId::new(format!("{op}/{}", target.name()), threads);
            group.bench_function(id("lookup"), |b| {
                b.iter_custom(|iters| {
                    run_threads(threads, iters, &|thread, i| {
                        let name = &names[target.index(thread, i)];
                        black_box(registry.get(name));
                    })
                })
            });
            group.bench_function(id("join_abandon"), |b| {
                b.iter_custom(|iters| {
                    run_threads(threads, iters, &|thread, i| {
                        let name = &names[target.index(thread, i)];
                        drop(registry.join(name, None).unwrap());
                    })
                })
            });
        }
        // Churn on one hot name would mostly find the room still alive (another thread's join
        // pending), so it only makes sense over distinct names. Creating rooms is ~20x slower
        // than the other operations: fewer samples keep it within the measurement time.
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("churn/distinct_rooms", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|thread, i| {
                    let name = &churn_names[Target::Distinct.index(thread, i)];
                    drop(registry.join(name, None).unwrap());
                })
            })
        });
        group.sample_size(20);
    }
    group.finish();
    assert_eq!(
        registry.room_count(),
        ROOMS,
        "churned rooms were all removed"
    );
}

criterion_group!(benches, registry_contention);
criterion_main!(benches);
