//! The notifier's back-of-the-envelope numbers, computed from inputs the user can change
//! (`--set sms_per_day=10000000`), and unit-tested against DESIGN.md §1's worked example.

use crate::{
    estimate::{Inputs, bytes, count, table},
    indent,
};

/// What the estimate starts from. The defaults are DESIGN.md §1's: the daily volumes, a
/// 10× peak, the rows of the migrations, 30 days kept, and the sizes and rates it reasons with.
pub fn inputs() -> Inputs {
    Inputs::new(&[
        ("push_per_day", 10e6, "push notifications a day"),
        ("sms_per_day", 1e6, "SMS a day"),
        ("email_per_day", 5e6, "emails a day"),
        ("peak_factor", 10.0, "peak traffic over the average"),
        (
            "notification_bytes",
            500.0,
            "a notification row, with its data",
        ),
        ("delivery_bytes", 100.0, "a delivery row (one per channel)"),
        ("attempt_bytes", 150.0, "an attempt row"),
        ("attempts_per_delivery", 1.0, "attempts a delivery makes"),
        ("retention_days", 30.0, "how long notifications are kept"),
        (
            "request_bytes",
            500.0,
            "a POST /v1/notifications, headers too",
        ),
        ("email_bytes", 1_000.0, "an email as SMTP carries it"),
        (
            "phone_bytes",
            500.0,
            "an SMS or push request to its provider",
        ),
        ("users", 10e6, "users who can be notified"),
        ("user_bytes", 300.0, "a users row, contacts and opt-outs"),
        (
            "partition_rate",
            200.0,
            "records a second one partition is planned for",
        ),
        ("headroom", 1.25, "capacity kept above the peak"),
        (
            "sms_account_rate",
            100.0,
            "SMS a second one gateway account takes",
        ),
    ])
}

/// The numbers DESIGN.md §1 derives.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    pub per_sec: f64,
    pub peak_per_sec: f64,
    pub peak_push_per_sec: f64,
    pub peak_sms_per_sec: f64,
    pub peak_email_per_sec: f64,
    pub bytes_per_notification: f64,
    pub storage_per_day: f64,
    pub storage: f64,
    pub peak_intake_bytes_per_sec: f64,
    pub peak_provider_bytes_per_sec: f64,
    pub users_table_bytes: f64,
    pub partitions: f64,
    pub sms_accounts: f64,
}

const SECONDS_PER_DAY: f64 = 86_400.0;

impl Estimates {
    pub fn from(inputs: &Inputs) -> Self {
        let peak = |per_day: f64| per_day / SECONDS_PER_DAY * inputs.get("peak_factor");
        let per_day =
            inputs.get("push_per_day") + inputs.get("sms_per_day") + inputs.get("email_per_day");
        let per_sec = per_day / SECONDS_PER_DAY;
        let peak_per_sec = peak(per_day);
        let peak_push_per_sec = peak(inputs.get("push_per_day"));
        let peak_sms_per_sec = peak(inputs.get("sms_per_day"));
        let peak_email_per_sec = peak(inputs.get("email_per_day"));
        // Each notification here goes to one channel: one notification, one delivery, and its
        // attempts.
        let bytes_per_notification = inputs.get("notification_bytes")
            + inputs.get("delivery_bytes")
            + inputs.get("attempt_bytes") * inputs.get("attempts_per_delivery");
        let storage_per_day = per_day * bytes_per_notification;
        Self {
            per_sec,
            peak_per_sec,
            peak_push_per_sec,
            peak_sms_per_sec,
            peak_email_per_sec,
            bytes_per_notification,
            storage_per_day,
            storage: storage_per_day * inputs.get("retention_days"),
            peak_intake_bytes_per_sec: peak_per_sec * inputs.get("request_bytes"),
            peak_provider_bytes_per_sec: (peak_push_per_sec + peak_sms_per_sec)
                * inputs.get("phone_bytes")
                + peak_email_per_sec * inputs.get("email_bytes"),
            users_table_bytes: inputs.get("users") * inputs.get("user_bytes"),
            // The intake topic carries every notification, so it is the busiest; every topic
            // gets as many, so that a channel's workers can grow as far.
            partitions: (peak_per_sec * inputs.get("headroom") / inputs.get("partition_rate"))
                .ceil(),
            sms_accounts: (peak_sms_per_sec / inputs.get("sms_account_rate")).ceil(),
        }
    }
}

/// What this machine measured: DESIGN.md §10's latest table, one row per backend set.
pub struct Measured {
    /// (backends, notifications a second carried end to end by one process).
    pub rows: Vec<(String, u64)>,
    pub source: String,
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
                "notifications",
                format!(
                    "{}/s average, {}/s at peak",
                    count(e.per_sec),
                    count(e.peak_per_sec)
                ),
            ),
            (
                "at peak, per channel",
                format!(
                    "push {}/s, email {}/s, SMS {}/s",
                    count(e.peak_push_per_sec),
                    count(e.peak_email_per_sec),
                    count(e.peak_sms_per_sec)
                ),
            ),
            (
                "storage",
                format!(
                    "{} a notification: {} a day, {} over the retention",
                    bytes(e.bytes_per_notification),
                    bytes(e.storage_per_day),
                    bytes(e.storage)
                ),
            ),
            (
                "bandwidth at peak",
                format!(
                    "{}/s in to intake, {}/s out to the providers",
                    bytes(e.peak_intake_bytes_per_sec),
                    bytes(e.peak_provider_bytes_per_sec)
                ),
            ),
            (
                "hot set",
                format!(
                    "the users table, {}: held in the database's memory, no cache",
                    bytes(e.users_table_bytes)
                ),
            ),
            ("partitions", format!("{} per topic", count(e.partitions))),
            (
                "SMS gateway accounts",
                format!("{} at peak", count(e.sms_accounts)),
            ),
        ],
    ));
    out.push_str("\nMeasured on this machine:\n");
    match measured {
        Some(m) if !m.rows.is_empty() => {
            let carried: Vec<String> = m
                .rows
                .iter()
                .map(|(backends, per_sec)| format!("{}/s on {backends}", count(*per_sec as f64)))
                .collect();
            let slowest = m
                .rows
                .iter()
                .map(|(_, per_sec)| *per_sec)
                .min()
                .unwrap_or(1);
            let processes = (e.peak_per_sec / slowest.max(1) as f64).ceil();
            out.push_str(&indent(
                &format!(
                    "one process, on two cores it shares with its database and broker, carried {} \
                     from intake to the provider ({}): the peak above needs {} such process(es), \
                     and at least 2 for availability. The providers, not the pipeline, are what \
                     limits a channel.",
                    carried.join(" and "),
                    m.source,
                    count(processes)
                ),
                "  ",
                "  ",
            ));
        }
        _ => out.push_str(
            "  DESIGN.md §10's latest table could not be read; see its pipeline benchmark, \
             loadtests/bench-notifier.sh.\n",
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

        // 16 million a day: ~185 a second, ~1,850 at a 10× peak.
        assert!(close(e.per_sec, 185.0, 1.0), "{e:?}");
        assert!(close(e.peak_per_sec, 1_850.0, 5.0), "{e:?}");
        assert!(close(e.peak_push_per_sec, 1_157.0, 1.0), "{e:?}");
        assert!(close(e.peak_sms_per_sec, 116.0, 1.0), "{e:?}");
        // ~750 B a notification: 12 GB a day, 360 GB over 30 days.
        assert_eq!(e.bytes_per_notification, 750.0);
        assert_eq!(e.storage_per_day, 12e9);
        assert_eq!(e.storage, 360e9);
        // ~0.9 MB/s in, ~1.2 MB/s out to the providers.
        assert!(close(e.peak_intake_bytes_per_sec, 0.93e6, 0.01e6), "{e:?}");
        assert!(close(e.peak_provider_bytes_per_sec, 1.2e6, 0.02e6), "{e:?}");
        assert_eq!(e.users_table_bytes, 3e9);
        // 1,852/s with 25 % headroom at 200/s a partition: 12.
        assert_eq!(e.partitions, 12.0);
        // 116 SMS a second at 100 an account: 2 accounts.
        assert_eq!(e.sms_accounts, 2.0);
    }

    #[test]
    fn ten_times_the_traffic_needs_ten_times_the_partitions_and_sms_accounts() {
        let mut inputs = inputs();
        for set in ["push_per_day=1e8", "sms_per_day=1e7", "email_per_day=5e7"] {
            inputs.set(set).unwrap();
        }

        let e = Estimates::from(&inputs);

        assert_eq!(e.storage, 3.6e12);
        assert_eq!(e.partitions, 116.0);
        assert_eq!(e.sms_accounts, 12.0);
    }

    #[test]
    fn retries_add_an_attempt_row_each() {
        let mut inputs = inputs();
        inputs.set("attempts_per_delivery=3").unwrap();

        assert_eq!(Estimates::from(&inputs).bytes_per_notification, 1_050.0);
    }

    #[test]
    fn the_rendered_estimate_names_every_number_and_what_was_measured() {
        let measured = Measured {
            rows: vec![("PostgreSQL + Kafka (tansu)".into(), 3_681)],
            source: "DESIGN.md §10".into(),
        };

        let out = render(&inputs(), Some(&measured));

        let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
        for expected in [
            "185/s average, 1,852/s at peak",
            "12.0 GB a day, 360.0 GB",
            "12 per topic",
            "3,681/s on PostgreSQL + Kafka (tansu)",
            "needs 1 such process(es)",
        ] {
            assert!(words.contains(expected), "{expected} missing:\n{out}");
        }
    }
}
