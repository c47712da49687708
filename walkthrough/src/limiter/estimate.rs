//! The rate limiter's back-of-the-envelope numbers, computed from inputs the user can change
//! (`--set daily_users=100000000`), and unit-tested against DESIGN.md §2's worked example.

use crate::estimate::{Inputs, bytes, count, table};

/// What the estimate starts from. The defaults are DESIGN.md §2's: its public API's users and
/// their habits, §5's batched Redis node, §11's decision API on Redis, the key sizes measured with
/// `MEMORY USAGE`, and the bytes a decision puts on the wire.
pub fn inputs() -> Inputs {
    Inputs::new(&[
        ("daily_users", 10e6, "users a day"),
        (
            "peak_active_share",
            0.1,
            "share of them active at the peak hour",
        ),
        (
            "requests_per_second",
            0.5,
            "requests a second from a user while active",
        ),
        (
            "active_minutes_per_day",
            30.0,
            "minutes a user is active a day",
        ),
        (
            "decisions_per_node",
            145e3,
            "decisions/s one Redis node serves, batched",
        ),
        (
            "decisions_per_core",
            30e3,
            "decisions/s one limiter core serves on Redis",
        ),
        ("gcra_key_bytes", 100.0, "Redis memory per token-bucket key"),
        (
            "log_limit",
            1_000.0,
            "a sliding log's limit, units per window",
        ),
        ("log_unit_bytes", 120.0, "Redis memory per sliding-log unit"),
        (
            "api_bytes",
            600.0,
            "bytes a decision takes on the wire, both ways",
        ),
        (
            "redis_bytes",
            225.0,
            "bytes a decision sends to and gets from Redis",
        ),
    ])
}

/// The numbers DESIGN.md §2 derives.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    pub average_per_sec: f64,
    pub peak_per_sec: f64,
    /// Clients with state at the peak: one key each (for one rule).
    pub live_keys: f64,
    pub redis_nodes: f64,
    pub limiter_cores: f64,
    pub gcra_memory: f64,
    pub log_memory: f64,
    pub api_bandwidth: f64,
    pub redis_bandwidth: f64,
}

const SECONDS_PER_DAY: f64 = 86_400.0;

impl Estimates {
    pub fn from(inputs: &Inputs) -> Self {
        let users = inputs.get("daily_users");
        let rate = inputs.get("requests_per_second");
        let live_keys = users * inputs.get("peak_active_share");
        let peak_per_sec = live_keys * rate;
        Self {
            average_per_sec: users * inputs.get("active_minutes_per_day") * 60.0 * rate
                / SECONDS_PER_DAY,
            peak_per_sec,
            live_keys,
            redis_nodes: (peak_per_sec / inputs.get("decisions_per_node")).ceil(),
            limiter_cores: (peak_per_sec / inputs.get("decisions_per_core")).ceil(),
            gcra_memory: live_keys * inputs.get("gcra_key_bytes"),
            log_memory: live_keys * inputs.get("log_limit") * inputs.get("log_unit_bytes"),
            api_bandwidth: peak_per_sec * inputs.get("api_bytes"),
            redis_bandwidth: peak_per_sec * inputs.get("redis_bytes"),
        }
    }
}

/// What this machine measured, beside the estimates it answers: DESIGN.md §11's latest rows on
/// Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Decisions a second one limiter thread got out of one Redis (the library path).
    pub redis_decisions_per_sec: u64,
    pub redis_source: String,
    /// Decisions a second the decision API served on Redis, end to end, on one core.
    pub api_decisions_per_sec: u64,
    pub api_source: String,
}

/// The estimate as the walkthrough prints it.
pub fn render(inputs: &Inputs, measured: Option<&Measured>) -> String {
    let e = Estimates::from(inputs);
    let mut out = inputs.render();
    out.push('\n');
    let log_limit = count(inputs.get("log_limit"));
    out.push_str(&table(
        "Estimates:",
        &[
            (
                "decisions",
                format!(
                    "{}/s average, {}/s at peak",
                    count(e.average_per_sec),
                    count(e.peak_per_sec)
                ),
            ),
            ("keys live at once", count(e.live_keys)),
            (
                "Redis nodes (partitions)",
                format!("{} at the peak, sharded by client key", e.redis_nodes),
            ),
            (
                "limiter cores (instances)",
                format!(
                    "{} at the peak ({} instances of 2 cores)",
                    e.limiter_cores,
                    (e.limiter_cores / 2.0).ceil()
                ),
            ),
            (
                "Redis memory, token bucket",
                format!("{} for the live keys (the hot set)", bytes(e.gcra_memory)),
            ),
            (
                "Redis memory, sliding log",
                format!(
                    "{} for the same keys at {log_limit} a window",
                    bytes(e.log_memory)
                ),
            ),
            (
                "storage over time",
                "none past the live keys: a key expires once it is full again".to_owned(),
            ),
            (
                "bandwidth at peak",
                format!(
                    "{}/s decision API, {}/s to Redis ({}/s a node)",
                    bytes(e.api_bandwidth),
                    bytes(e.redis_bandwidth),
                    bytes(e.redis_bandwidth / e.redis_nodes)
                ),
            ),
        ],
    ));
    out.push_str("\nMeasured on this machine:\n");
    let indent = |text: String| crate::indent(&text, "  ", "  ");
    match measured {
        Some(m) => {
            let nodes = (e.peak_per_sec / m.redis_decisions_per_sec as f64).ceil();
            out.push_str(&indent(format!(
                "one limiter thread got {} decisions/s out of one Redis ({}): at that rate the \
                 peak needs {nodes} Redis nodes, not {}.",
                count(m.redis_decisions_per_sec as f64),
                m.redis_source,
                e.redis_nodes
            )));
            let cores = (e.peak_per_sec / m.api_decisions_per_sec as f64).ceil();
            out.push_str(&indent(format!(
                "the decision API on Redis served {} decisions/s end to end on one core ({}): \
                 the peak needs {cores} cores of it.",
                count(m.api_decisions_per_sec as f64),
                m.api_source
            )));
        }
        None => out.push_str(
            "  DESIGN.md §11's table on Redis could not be read; see it, and \
             loadtests/bench-rate-limiter.sh.\n",
        ),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::close;

    #[test]
    fn the_defaults_give_design_md_section_2s_numbers() {
        let e = Estimates::from(&inputs());

        assert_eq!(e.peak_per_sec, 500e3);
        assert!(close(e.average_per_sec, 104e3, 500.0), "{e:?}");
        assert_eq!(e.live_keys, 1e6);
        assert_eq!(e.redis_nodes, 4.0);
        assert_eq!(e.limiter_cores, 17.0);
        assert_eq!(e.gcra_memory, 100e6);
        assert_eq!(e.log_memory, 120e9);
        assert_eq!(e.api_bandwidth, 300e6);
        assert!(close(e.redis_bandwidth, 113e6, 1e6), "{e:?}");
        assert!(
            close(e.redis_bandwidth / e.redis_nodes, 28e6, 0.5e6),
            "{e:?}"
        );
    }

    #[test]
    fn ten_times_the_users_need_thirty_five_redis_nodes() {
        let mut inputs = inputs();
        inputs.set("daily_users=100_000_000").unwrap();

        let e = Estimates::from(&inputs);

        // DESIGN.md §2, "At 10x and 100x".
        assert_eq!(e.redis_nodes, 35.0);
        assert!(close(e.limiter_cores, 170.0, 5.0), "{e:?}");
    }

    #[test]
    fn a_longer_day_moves_the_average_and_not_the_peak() {
        let before = Estimates::from(&inputs());
        let mut inputs = inputs();
        inputs.set("active_minutes_per_day=60").unwrap();

        let after = Estimates::from(&inputs);

        assert_eq!(after.average_per_sec, 2.0 * before.average_per_sec);
        assert_eq!(after.peak_per_sec, before.peak_per_sec);
        assert_eq!(after.redis_nodes, before.redis_nodes);
    }

    #[test]
    fn the_printed_estimate_sets_the_measured_rate_beside_the_assumed_one() {
        let measured = Measured {
            redis_decisions_per_sec: 74_815,
            redis_source: "DESIGN.md §11".into(),
            api_decisions_per_sec: 33_028,
            api_source: "DESIGN.md §11".into(),
        };

        let out = render(&inputs(), Some(&measured));

        assert!(
            out.contains("104,167/s average, 500,000/s at peak"),
            "{out}"
        );
        assert!(out.contains("needs 7 Redis nodes, not 4"), "{out}");
        assert!(out.contains("needs 16 cores"), "{out}");
    }
}
