//! Nanoseconds per in-process decision, for each algorithm, beside governor in the same run.
//!
//! ```text
//! cargo bench -p rate-limiter --bench decisions
//! ```
//!
//! Two shapes, each on one thread and on two threads at once:
//! - `hot-key`: every decision for the same key, the worst case for lock contention;
//! - `10k-keys`: decisions spread over 10,000 keys, as a gateway sees many clients.
//!
//! Limits are far above the offered rate, so every decision admits and spends: the path that
//! writes. governor's `check`/`check_key` (one `AtomicU64` per key, a lock-free GCRA) is the floor
//! for what an in-process limiter can cost; ours pays for a mutex, a `String` key and
//! multi-rule atomicity. Results and their reading are in `DESIGN.md` §11.

use std::{
    hint::black_box,
    num::NonZeroU32,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use platform::clock::SystemClock;
use rate_limiter::{
    algorithm::{Algorithm, FixedWindow, LeakyBucket, SlidingCounter, SlidingLog, TokenBucket},
    store::{Check, MemoryStore},
};

const KEYS: usize = 10_000;

fn algorithms() -> Vec<Algorithm> {
    // Far above any rate a core can offer: a million tokens a second (the fastest interval, one
    // microsecond) with a burst of a billion. The log is capped at 10,000 units, so its window is
    // a millisecond, shorter than a core takes to make 10,000 decisions (DESIGN.md §11).
    let second = Duration::from_secs(1);
    vec![
        Algorithm::TokenBucket(TokenBucket::new(1_000_000, second, 1_000_000_000).unwrap()),
        Algorithm::LeakyBucket(LeakyBucket::new(1_000_000, second, 1_000_000_000).unwrap()),
        Algorithm::FixedWindow(FixedWindow::new(u32::MAX.into(), second).unwrap()),
        Algorithm::SlidingLog(
            SlidingLog::new(SlidingLog::MAX_LIMIT, Duration::from_millis(1)).unwrap(),
        ),
        Algorithm::SlidingCounter(SlidingCounter::new(1_000_000_000, second).unwrap()),
    ]
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("client:{i}")).collect()
}

/// Runs `decide(i)` for `iterations` spread over `threads`, and returns the wall time.
fn on_threads(threads: usize, iterations: u64, decide: impl Fn(u64) + Sync) -> Duration {
    let started = Instant::now();
    thread::scope(|scope| {
        for t in 0..threads as u64 {
            let decide = &decide;
            scope.spawn(move || {
                for i in 0..iterations / threads as u64 {
                    decide(i * threads as u64 + t);
                }
            });
        }
    });
    started.elapsed()
}

fn decisions(c: &mut Criterion) {
    let keys = keys();
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("decision/{threads}-thread"));
        group.throughput(Throughput::Elements(1));
        for algorithm in algorithms() {
            for (shape, spread) in [("hot-key", 1), ("10k-keys", KEYS)] {
                let store = MemoryStore::new(Arc::new(SystemClock));
                group.bench_function(BenchmarkId::new(algorithm.name(), shape), |b| {
                    b.iter_custom(|iterations| {
                        on_threads(threads, iterations, |i| {
                            let check = Check {
                                rule: "bench",
                                algorithm: &algorithm,
                                key: &keys[i as usize % spread],
                                units: 1,
                                enforced: true,
                            };
                            black_box(
                                store
                                    .decide_now(&[check])
                                    .expect("10,000 keys fit the store"),
                            );
                        })
                    })
                });
            }
        }

        let quota = Quota::per_second(NonZeroU32::new(u32::MAX).unwrap());
        let direct = RateLimiter::direct(quota);
        group.bench_function(BenchmarkId::new("governor", "hot-key-direct"), |b| {
            b.iter_custom(|iterations| {
                on_threads(threads, iterations, |_| {
                    let _ = black_box(direct.check());
                })
            })
        });
        for (shape, spread) in [("hot-key", 1), ("10k-keys", KEYS)] {
            let keyed = RateLimiter::keyed(quota);
            group.bench_function(BenchmarkId::new("governor", shape), |b| {
                b.iter_custom(|iterations| {
                    on_threads(threads, iterations, |i| {
                        let _ = black_box(keyed.check_key(&keys[i as usize % spread]));
                    })
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = decisions
}
criterion_main!(benches);
