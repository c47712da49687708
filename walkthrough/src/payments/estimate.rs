//! The payments service's back-of-the-envelope numbers, computed from inputs the user can change
//! (`--set payments_per_day=100000000`), and unit-tested against the worked example of
//! DESIGN.md §1 ("Estimates").

use crate::estimate::{Inputs, bytes, count, table};

/// What the estimate starts from. The defaults are DESIGN.md §1's: a mid-size merchant platform,
/// this design's row sizes (the key row carries the request and the stored answer), the relay's
/// statements counted with the request's, a card network's slow end.
pub fn inputs() -> Inputs {
    Inputs::new(&[
        ("payments_per_day", 10e6, "payments taken a day"),
        ("peak_factor", 8.64, "peak traffic over the average"),
        (
            "key_retention_hours",
            24.0,
            "how long a key replays its answer",
        ),
        ("key_row_bytes", 700.0, "bytes a key takes, with its answer"),
        ("payment_row_bytes", 300.0, "bytes a payment takes"),
        ("payment_retention_years", 7.0, "how long payments are kept"),
        (
            "statements_per_payment",
            6.0,
            "database transactions a payment costs",
        ),
        (
            "retry_window_minutes",
            10.0,
            "how long after a request its retries come",
        ),
        ("request_bytes", 500.0, "bytes of a POST, headers included"),
        (
            "response_bytes",
            500.0,
            "bytes of its answer, headers included",
        ),
        (
            "provider_latency_ms",
            2_000.0,
            "the provider's answer, slow end",
        ),
        (
            "events_per_partition",
            400.0,
            "events/s one consumer of the topic takes",
        ),
    ])
}

/// The numbers DESIGN.md §1 derives.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    pub payments_per_sec: f64,
    pub peak_payments_per_sec: f64,
    pub live_keys: f64,
    pub key_bytes: f64,
    pub payment_bytes_per_day: f64,
    pub payment_bytes: f64,
    pub peak_transactions_per_sec: f64,
    pub hot_key_bytes: f64,
    pub peak_bytes_in_per_sec: f64,
    pub peak_bytes_out_per_sec: f64,
    pub peak_in_flight: f64,
    pub partitions: f64,
}

const SECONDS_PER_DAY: f64 = 86_400.0;

impl Estimates {
    pub fn from(inputs: &Inputs) -> Self {
        let per_day = inputs.get("payments_per_day");
        let payments_per_sec = per_day / SECONDS_PER_DAY;
        let peak = payments_per_sec * inputs.get("peak_factor");
        // The reaper keeps the table at one retention's worth of keys, whatever the age.
        let live_keys = per_day * inputs.get("key_retention_hours") / 24.0;
        let payment_bytes_per_day = per_day * inputs.get("payment_row_bytes");
        Self {
            payments_per_sec,
            peak_payments_per_sec: peak,
            live_keys,
            key_bytes: live_keys * inputs.get("key_row_bytes"),
            payment_bytes_per_day,
            payment_bytes: payment_bytes_per_day * 365.0 * inputs.get("payment_retention_years"),
            peak_transactions_per_sec: peak * inputs.get("statements_per_payment"),
            // The keys a retry may still ask for, at peak: what the buffer cache should hold.
            hot_key_bytes: peak
                * inputs.get("retry_window_minutes")
                * 60.0
                * inputs.get("key_row_bytes"),
            peak_bytes_in_per_sec: peak * inputs.get("request_bytes"),
            peak_bytes_out_per_sec: peak * inputs.get("response_bytes"),
            // Little's law: requests in flight are the rate times how long each waits.
            peak_in_flight: peak * inputs.get("provider_latency_ms") / 1_000.0,
            // One event per payment.
            partitions: whole(peak / inputs.get("events_per_partition")),
        }
    }
}

/// What this machine measured, beside the estimate it answers: DESIGN.md §8's row.
pub struct Measured {
    pub payments_per_sec: f64,
    pub transactions_per_payment: f64,
    pub source: String,
}

/// Instances for the peak at the measured rate, and never fewer than two: one instance is an
/// outage waiting for a deploy.
fn instances(peak: f64, measured: &Measured) -> f64 {
    whole(peak / measured.payments_per_sec).max(2.0)
}

/// How many whole ones `needed` takes, rounded up, but not past a floating-point error's worth:
/// 10^9 payments a day at a peak of 8.64 is 100,000.00000000001 a second, which needs 250
/// partitions of 400, not 251.
fn whole(needed: f64) -> f64 {
    (needed * (1.0 - 1e-12)).ceil()
}

/// The estimate as the walkthrough prints it.
pub fn render(inputs: &Inputs, measured: Option<&Measured>) -> String {
    let e = Estimates::from(inputs);
    let mut out = inputs.render();
    out.push('\n');
    out.push_str(&table(
        "Estimates:",
        &[
            (
                "payments",
                format!(
                    "{}/s average, {}/s at peak",
                    count(e.payments_per_sec),
                    count(e.peak_payments_per_sec)
                ),
            ),
            (
                "idempotency keys kept",
                format!(
                    "{} rows, {} (flat: the reaper)",
                    count(e.live_keys),
                    bytes(e.key_bytes)
                ),
            ),
            (
                "payments stored",
                format!(
                    "{} a day, {} over the retention",
                    bytes(e.payment_bytes_per_day),
                    bytes(e.payment_bytes)
                ),
            ),
            (
                "database at peak",
                format!("{} transactions/s", count(e.peak_transactions_per_sec)),
            ),
            (
                "hot keys (buffer cache)",
                format!("{}, no cache in front", bytes(e.hot_key_bytes)),
            ),
            (
                "bandwidth at peak",
                format!(
                    "{}/s in, {}/s out",
                    bytes(e.peak_bytes_in_per_sec),
                    bytes(e.peak_bytes_out_per_sec)
                ),
            ),
            (
                "requests in flight",
                format!(
                    "{} at peak, waiting on the provider",
                    count(e.peak_in_flight)
                ),
            ),
            (
                "topic partitions",
                format!("{} for payments.events", count(e.partitions)),
            ),
        ],
    ));
    out.push_str("\nMeasured on this machine:\n");
    match measured {
        Some(m) => {
            out.push_str(&crate::indent(
                &format!(
                    "{} payments/s with the key check and {:.2} database transactions a \
                     payment ({}): the peak above needs {} instance(s) of that size (never \
                     fewer than 2) and {} commits/s on the primary.",
                    count(m.payments_per_sec),
                    m.transactions_per_payment,
                    m.source,
                    instances(e.peak_payments_per_sec, m),
                    count(e.peak_payments_per_sec * m.transactions_per_payment)
                ),
                "  ",
                "  ",
            ));
        }
        None => out.push_str(
            "  DESIGN.md §8's table could not be read; see its benchmark, \
             loadtests/bench-idempotency.sh.\n",
        ),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::close;

    #[test]
    fn the_defaults_give_design_md_section_1s_numbers() {
        let e = Estimates::from(&inputs());

        assert!(close(e.payments_per_sec, 116.0, 0.5), "{e:?}");
        assert!(close(e.peak_payments_per_sec, 1_000.0, 0.01), "{e:?}");
        assert_eq!(e.live_keys, 10e6);
        assert_eq!(e.key_bytes, 7e9);
        assert_eq!(e.payment_bytes_per_day, 3e9);
        // ~7.7 TB over seven years.
        assert!(close(e.payment_bytes, 7.7e12, 0.05e12), "{e:?}");
        assert!(close(e.peak_transactions_per_sec, 6_000.0, 0.1), "{e:?}");
        // ~420 MB of keys a retry may still ask for.
        assert!(close(e.hot_key_bytes, 420e6, 1e3), "{e:?}");
        assert!(close(e.peak_bytes_in_per_sec, 500e3, 1.0), "{e:?}");
        assert!(close(e.peak_bytes_out_per_sec, 500e3, 1.0), "{e:?}");
        assert!(close(e.peak_in_flight, 2_000.0, 0.1), "{e:?}");
        assert_eq!(e.partitions, 3.0);
    }

    #[test]
    fn ten_times_the_payments_scale_everything_but_the_partitions_per_consumer() {
        let before = Estimates::from(&inputs());
        let mut inputs = inputs();
        inputs.set("payments_per_day=100_000_000").unwrap();

        let after = Estimates::from(&inputs);

        assert_eq!(after.key_bytes, 10.0 * before.key_bytes);
        assert!(close(
            after.peak_transactions_per_sec,
            10.0 * before.peak_transactions_per_sec,
            1e-6
        ));
        assert_eq!(after.partitions, 25.0);
    }

    #[test]
    fn a_hundred_times_the_payments_need_250_partitions_not_one_more() {
        let mut inputs = inputs();
        inputs.set("payments_per_day=1e9").unwrap();

        assert_eq!(Estimates::from(&inputs).partitions, 250.0);
        assert_eq!(whole(250.5), 251.0);
    }

    #[test]
    fn the_measured_rate_sets_the_instances_but_never_below_two() {
        let measured = Measured {
            payments_per_sec: 722.0,
            transactions_per_payment: 6.3,
            source: String::new(),
        };

        assert_eq!(instances(1_000.0, &measured), 2.0);
        assert_eq!(instances(100.0, &measured), 2.0);
        assert_eq!(instances(10_000.0, &measured), 14.0);
    }
}
