//! Redis-backed decisions per second, measured the way `redis-benchmark` measures a GET: one
//! client thread keeping a fixed number of requests outstanding against the Redis on
//! `REDIS_URL`, each waiting for its answer before sending the next (closed loop).
//!
//! Each decision goes through the library path the gateway and the tower layer use
//! ([`Limiter::check`] over [`RedisStore`]), for the `per-user` token bucket of `rules.toml` and
//! a random client among 10,000, so most decisions admit and write. The over-limit cache is off,
//! so every decision is decided by Redis. `loadtests/bench-rate-limiter.sh` runs it beside
//! `redis-benchmark -t get` with the same number of connections, on the same core.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p rate-limiter --example redis_decisions -- 32 10
//! ```
//! Arguments: requests outstanding (32), seconds measured (10). Prints decisions per second.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rate_limiter::{
    limiter::Limiter,
    rules::{self, ClientKey, DEFAULT_RULES, Format},
    store::RedisStore,
};

const CLIENTS: u64 = 10_000;
const WARM_UP: Duration = Duration::from_secs(1);

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let outstanding: usize = args.next().map_or(Ok(32), |arg| arg.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |arg| arg.parse())?;
    let url = std::env::var("REDIS_URL")
        .map_err(|_| anyhow::anyhow!("set REDIS_URL to the Redis to measure"))?;

    let rules = rules::parse(DEFAULT_RULES, Format::Toml, "rules.toml")?.rules;
    let namespace = format!("bench:{}:", std::process::id());
    let (store, _policy) = RedisStore::connect(&url, namespace).await?;
    let limiter = Arc::new(Limiter::new(rules, Arc::new(store), 0));
    let rule = limiter.rule("per-user")?.clone();

    let decided = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for caller in 0..outstanding as u64 {
        let (limiter, rule, decided, stop) =
            (limiter.clone(), rule.clone(), decided.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            // xorshift64: a different random sequence of clients per caller.
            let mut state = 0x9E37_79B9_7F4A_7C15 ^ (caller + 1);
            while !stop.load(Ordering::Relaxed) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let key =
                    ClientKey::parse(&format!("client:{}", state % CLIENTS)).expect("a valid key");
                let verdict = limiter.check(&[(rule.clone(), key)], 1).await;
                let verdict = verdict.expect("the per-user rule admits a cost of 1");
                // A failed-open decision was not decided by Redis: stop rather than count it.
                assert!(
                    verdict.outcomes[0].decision.is_some(),
                    "Redis did not answer in time"
                );
                decided.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    tokio::time::sleep(WARM_UP).await;
    let (start, before) = (Instant::now(), decided.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (elapsed, after) = (start.elapsed(), decided.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await?;
    }
    println!("{:.0}", (after - before) as f64 / elapsed.as_secs_f64());
    Ok(())
}
