//! The feed's back-of-the-envelope numbers, computed from inputs the user can change (`--set
//! posts_per_day=4000000000`), and unit-tested against DESIGN.md §1's worked estimate. The
//! partitions and the cores come from what this machine measured (DESIGN.md §11's latest table,
//! [`Measured`]), so they move with the benchmark.

use crate::{
    estimate::{Inputs, bytes, count, table},
    indent,
};

/// What the estimate starts from. The defaults are DESIGN.md §1's: Twitter's numbers as
/// Krikorian and DDIA give them, and this design's row, cache entry and page sizes.
pub fn inputs() -> Inputs {
    Inputs::new(&[
        (
            "daily_active_users",
            150e6,
            "readers a day, each with a cached timeline",
        ),
        ("posts_per_day", 400e6, "new posts a day"),
        ("reads_per_post", 65.0, "home-feed reads per post"),
        ("peak_factor", 2.6, "peak traffic over the average"),
        (
            "followers_per_post",
            75.0,
            "followers an average post reaches",
        ),
        (
            "largest_following",
            30e6,
            "followers of the most followed author",
        ),
        ("follows_per_reader", 200.0, "authors a reader follows"),
        ("page_size", 20.0, "posts in a page"),
        ("post_bytes", 200.0, "bytes a post takes in the database"),
        ("retention_years", 10.0, "how long posts are kept"),
        ("timeline_cap", 800.0, "post ids kept per timeline"),
        (
            "timeline_entry_bytes",
            100.0,
            "bytes an id takes in a Redis sorted set",
        ),
        (
            "cached_post_bytes",
            300.0,
            "bytes a post takes in the post cache",
        ),
        (
            "post_cache_days",
            1.0,
            "how long a post stays in the post cache",
        ),
        (
            "page_bytes",
            5_000.0,
            "bytes of a page of posts on the wire",
        ),
        ("cores_per_instance", 8.0, "cores of one service instance"),
    ])
}

const SECONDS_PER_DAY: f64 = 86_400.0;

/// The numbers DESIGN.md §1 derives from the inputs alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    pub posts_per_sec: f64,
    pub peak_posts_per_sec: f64,
    pub reads_per_sec: f64,
    pub peak_reads_per_sec: f64,
    /// Timeline inserts under push.
    pub fanout_writes_per_sec: f64,
    pub peak_fanout_writes_per_sec: f64,
    /// Timeline inserts of one post by the most followed author, under push (0 under hybrid).
    pub celebrity_post_writes: f64,
    /// Index entries a pull read touches (one range of `page + 1` per author), and a second.
    pub pull_entries_per_read: f64,
    pub pull_entries_per_sec: f64,
    pub posts_kept: f64,
    pub storage_bytes: f64,
    pub timeline_cache_bytes: f64,
    pub post_cache_bytes: f64,
    pub egress_bytes_per_sec: f64,
    pub peak_egress_bytes_per_sec: f64,
}

impl Estimates {
    pub fn from(inputs: &Inputs) -> Self {
        let posts_per_sec = inputs.get("posts_per_day") / SECONDS_PER_DAY;
        let peak = inputs.get("peak_factor");
        let reads_per_sec = posts_per_sec * inputs.get("reads_per_post");
        let fanout_writes_per_sec = posts_per_sec * inputs.get("followers_per_post");
        let pull_entries_per_read =
            inputs.get("follows_per_reader") * (inputs.get("page_size") + 1.0);
        let posts_kept = inputs.get("posts_per_day") * 365.0 * inputs.get("retention_years");
        Self {
            posts_per_sec,
            peak_posts_per_sec: posts_per_sec * peak,
            reads_per_sec,
            peak_reads_per_sec: reads_per_sec * peak,
            fanout_writes_per_sec,
            peak_fanout_writes_per_sec: fanout_writes_per_sec * peak,
            celebrity_post_writes: inputs.get("largest_following"),
            pull_entries_per_read,
            pull_entries_per_sec: reads_per_sec * pull_entries_per_read,
            posts_kept,
            storage_bytes: posts_kept * inputs.get("post_bytes"),
            timeline_cache_bytes: inputs.get("daily_active_users")
                * inputs.get("timeline_cap")
                * inputs.get("timeline_entry_bytes"),
            post_cache_bytes: inputs.get("posts_per_day")
                * inputs.get("post_cache_days")
                * inputs.get("cached_post_bytes"),
            egress_bytes_per_sec: reads_per_sec * inputs.get("page_bytes"),
            peak_egress_bytes_per_sec: reads_per_sec * peak * inputs.get("page_bytes"),
        }
    }
}

/// What this machine measured (DESIGN.md §11's latest table, on PostgreSQL, Redis and Kafka).
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The service's CPU per cached read, in milliseconds, under push and under hybrid.
    pub push_read_cpu_ms: f64,
    pub hybrid_read_cpu_ms: f64,
    /// Redis's CPU per push read, in milliseconds.
    pub redis_read_cpu_ms: f64,
    /// Posts a second taken under push, and the timeline inserts each made.
    pub push_posts_per_sec: f64,
    pub fanout_writes_per_post: f64,
    /// The fan-out workers that made those inserts (`FEED_FANOUT_WORKERS`, 2 in the benchmark).
    pub workers: f64,
    /// Where the figures come from, e.g. "DESIGN.md §11, PostgreSQL, Redis, Kafka (tansu)".
    pub source: String,
}

/// What the measured figures make of the estimate: partitions and cores.
#[derive(Debug, Clone, PartialEq)]
pub struct Sized {
    pub inserts_per_worker: f64,
    pub partitions: f64,
    /// How long one post by the most followed author keeps one worker busy under push.
    pub celebrity_post_seconds: f64,
    pub push_cores: f64,
    pub peak_push_cores: f64,
    pub push_instances: f64,
    pub hybrid_cores: f64,
    pub peak_hybrid_cores: f64,
    pub hybrid_instances: f64,
    pub redis_cores: f64,
}

impl Sized {
    pub fn from(e: &Estimates, m: &Measured, cores_per_instance: f64) -> Self {
        let inserts_per_worker = m.push_posts_per_sec * m.fanout_writes_per_post / m.workers;
        let cores = |reads: f64, cpu_ms: f64| reads * cpu_ms / 1_000.0;
        let peak_push_cores = cores(e.peak_reads_per_sec, m.push_read_cpu_ms);
        let peak_hybrid_cores = cores(e.peak_reads_per_sec, m.hybrid_read_cpu_ms);
        Self {
            inserts_per_worker,
            partitions: (e.peak_fanout_writes_per_sec / inserts_per_worker).ceil(),
            celebrity_post_seconds: e.celebrity_post_writes / inserts_per_worker,
            push_cores: cores(e.reads_per_sec, m.push_read_cpu_ms),
            peak_push_cores,
            push_instances: (peak_push_cores / cores_per_instance).ceil(),
            hybrid_cores: cores(e.reads_per_sec, m.hybrid_read_cpu_ms),
            peak_hybrid_cores,
            hybrid_instances: (peak_hybrid_cores / cores_per_instance).ceil(),
            redis_cores: cores(e.reads_per_sec, m.redis_read_cpu_ms),
        }
    }
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
                "posts",
                format!(
                    "{}/s average, {}/s at peak",
                    count(e.posts_per_sec),
                    count(e.peak_posts_per_sec)
                ),
            ),
            (
                "feed reads",
                format!(
                    "{}/s average, {}/s at peak",
                    count(e.reads_per_sec),
                    count(e.peak_reads_per_sec)
                ),
            ),
            (
                "push: timeline inserts",
                format!(
                    "{}/s average, {}/s at peak",
                    count(e.fanout_writes_per_sec),
                    count(e.peak_fanout_writes_per_sec)
                ),
            ),
            (
                "a post by the most followed",
                format!(
                    "{} inserts under push, 0 under hybrid",
                    count(e.celebrity_post_writes)
                ),
            ),
            (
                "pull: index entries",
                format!(
                    "{} a read, {}/s",
                    count(e.pull_entries_per_read),
                    count(e.pull_entries_per_sec)
                ),
            ),
            ("posts over retention", count(e.posts_kept)),
            ("storage", bytes(e.storage_bytes)),
            ("cache: timelines", bytes(e.timeline_cache_bytes)),
            ("cache: posts", bytes(e.post_cache_bytes)),
            (
                "bandwidth out",
                format!(
                    "{}/s average, {}/s at peak",
                    bytes(e.egress_bytes_per_sec),
                    bytes(e.peak_egress_bytes_per_sec)
                ),
            ),
        ],
    ));
    out.push_str("\nMeasured on this machine, and what it sizes:\n");
    let Some(m) = measured else {
        out.push_str(
            "  DESIGN.md §11's latest table could not be read; see its benchmark, \
             loadtests/bench-feed.sh.\n",
        );
        return out;
    };
    let s = Sized::from(&e, m, inputs.get("cores_per_instance"));
    let lines = [
        format!(
            "{}: under push, {} posts/s made {:.1} timeline inserts each with {} workers, at least \
             {} inserts/s a worker.",
            m.source,
            count(m.push_posts_per_sec),
            m.fanout_writes_per_post,
            m.workers,
            count(s.inserts_per_worker)
        ),
        format!(
            "partitions: {} for the peak's inserts, a worker each; one post by the most followed \
             author, on its author's one partition, keeps a worker busy {:.0} minutes under push.",
            s.partitions,
            s.celebrity_post_seconds / 60.0
        ),
        format!(
            "cores for reads: push at {} ms a read, {} cores average, {} at peak ({} instances); \
             hybrid at {} ms, {} and {} ({} instances); Redis at {} ms a push read, {} cores.",
            m.push_read_cpu_ms,
            count(s.push_cores),
            count(s.peak_push_cores),
            s.push_instances,
            m.hybrid_read_cpu_ms,
            count(s.hybrid_cores),
            count(s.peak_hybrid_cores),
            s.hybrid_instances,
            m.redis_read_cpu_ms,
            count(s.redis_cores)
        ),
    ];
    for line in lines {
        out.push_str(&indent(&line, "  ", "    "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::close;

    /// DESIGN.md §1's measured figures, from §11's latest table at the time it was written.
    fn measured() -> Measured {
        Measured {
            push_read_cpu_ms: 0.147,
            hybrid_read_cpu_ms: 0.259,
            redis_read_cpu_ms: 0.083,
            push_posts_per_sec: 2_056.0,
            fanout_writes_per_post: 21.0,
            workers: 2.0,
            source: "DESIGN.md §11".to_owned(),
        }
    }

    #[test]
    fn the_defaults_give_design_md_section_1s_numbers() {
        let e = Estimates::from(&inputs());

        assert!(close(e.posts_per_sec, 4_630.0, 1.0), "{e:?}");
        assert!(close(e.peak_posts_per_sec, 12_037.0, 1.0), "{e:?}");
        assert!(close(e.reads_per_sec, 300_926.0, 1.0), "{e:?}");
        assert!(close(e.peak_reads_per_sec, 782_407.0, 1.0), "{e:?}");
        assert!(close(e.fanout_writes_per_sec, 347_222.0, 1.0), "{e:?}");
        assert!(close(e.peak_fanout_writes_per_sec, 902_778.0, 1.0), "{e:?}");
        assert_eq!(e.celebrity_post_writes, 30e6);
        assert_eq!(e.pull_entries_per_read, 4_200.0);
        assert!(close(e.pull_entries_per_sec, 1.26e9, 0.01e9), "{e:?}");
        assert_eq!(e.posts_kept, 1.46e12);
        assert!(close(e.storage_bytes, 292e12, 1.0), "{e:?}");
        assert!(close(e.timeline_cache_bytes, 12e12, 1.0), "{e:?}");
        assert!(close(e.post_cache_bytes, 120e9, 1.0), "{e:?}");
        assert!(close(e.egress_bytes_per_sec, 1.5e9, 0.01e9), "{e:?}");
        assert!(close(e.peak_egress_bytes_per_sec, 3.9e9, 0.02e9), "{e:?}");
    }

    #[test]
    fn the_measured_figures_give_design_md_section_1s_partitions_and_instances() {
        let e = Estimates::from(&inputs());

        let s = Sized::from(&e, &measured(), 8.0);

        assert_eq!(s.inserts_per_worker, 21_588.0);
        assert_eq!(s.partitions, 42.0);
        assert!(close(s.celebrity_post_seconds / 60.0, 23.0, 0.5), "{s:?}");
        assert_eq!(s.push_cores.round(), 44.0);
        assert_eq!(s.peak_push_cores.round(), 115.0);
        assert_eq!(s.push_instances, 15.0);
        assert_eq!(s.hybrid_cores.round(), 78.0);
        assert_eq!(s.peak_hybrid_cores.round(), 203.0);
        assert_eq!(s.hybrid_instances, 26.0);
        assert_eq!(s.redis_cores.round(), 25.0);
    }

    #[test]
    fn ten_times_the_posts_multiply_the_rates_the_storage_and_the_partitions() {
        let before = Estimates::from(&inputs());
        let mut inputs = inputs();
        inputs.set("posts_per_day=4e9").unwrap();

        let after = Estimates::from(&inputs);

        assert!(close(
            after.reads_per_sec,
            10.0 * before.reads_per_sec,
            1e-6
        ));
        assert!(close(after.storage_bytes, 10.0 * before.storage_bytes, 1.0));
        assert_eq!(after.timeline_cache_bytes, before.timeline_cache_bytes);
        let partitions = |e: &Estimates| Sized::from(e, &measured(), 8.0).partitions;
        assert_eq!(partitions(&after), 419.0);
    }

    #[test]
    fn the_printed_estimate_shows_the_numbers_and_what_they_size() {
        let out = render(&inputs(), Some(&measured()));

        for number in [
            "4,630/s average, 12,037/s at peak",
            "300,926/s average",
            "347,222/s average",
            "30,000,000 inserts under push, 0 under hybrid",
            "292.0 TB",
            "12.0 TB",
            "1.5 GB/s average",
            "partitions: 42",
        ] {
            assert!(out.contains(number), "{number} missing:\n{out}");
        }
    }
}
