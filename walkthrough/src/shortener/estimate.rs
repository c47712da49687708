//! The shortener's back-of-the-envelope numbers, computed from inputs the user can change
//! (`--set links_per_day=200000000`), and unit-tested against DESIGN.md §2's worked example.

use crate::estimate::{Inputs, bytes, count, table};

/// What the estimate starts from. The defaults are DESIGN.md §2's: Xu's traffic, this design's
/// row (~220 B with its header and index entry), its hot set and its ID blocks.
pub fn inputs() -> Inputs {
    Inputs::new(&[
        ("links_per_day", 100e6, "new links a day"),
        ("reads_per_write", 10.0, "redirects per link created"),
        ("row_bytes", 220.0, "bytes a link takes in the database"),
        ("retention_years", 10.0, "how long links are kept"),
        ("peak_factor", 2.0, "peak traffic over the average"),
        ("hot_links", 10e6, "links in the hot set"),
        ("cache_entry_bytes", 150.0, "bytes a cached link takes"),
        ("id_block_size", 1_000.0, "IDs an instance leases at once"),
        ("redirect_bytes", 500.0, "bytes of a redirect's response"),
        ("shard_bytes", 2e12, "bytes one database primary keeps"),
    ])
}

/// The numbers DESIGN.md §2 derives.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    pub creates_per_sec: f64,
    pub redirects_per_sec: f64,
    pub peak_redirects_per_sec: f64,
    pub links: f64,
    pub code_length: u32,
    pub storage_bytes: f64,
    pub cache_bytes: f64,
    pub id_blocks_per_sec: f64,
    pub peak_egress_bytes_per_sec: f64,
    pub shards: f64,
}

const SECONDS_PER_DAY: f64 = 86_400.0;

impl Estimates {
    pub fn from(inputs: &Inputs) -> Self {
        let creates_per_sec = inputs.get("links_per_day") / SECONDS_PER_DAY;
        let redirects_per_sec = creates_per_sec * inputs.get("reads_per_write");
        let peak_redirects_per_sec = redirects_per_sec * inputs.get("peak_factor");
        let links = inputs.get("links_per_day") * 365.0 * inputs.get("retention_years");
        Self {
            creates_per_sec,
            redirects_per_sec,
            peak_redirects_per_sec,
            links,
            code_length: base62_length(links),
            storage_bytes: links * inputs.get("row_bytes"),
            cache_bytes: inputs.get("hot_links") * inputs.get("cache_entry_bytes"),
            id_blocks_per_sec: creates_per_sec / inputs.get("id_block_size"),
            peak_egress_bytes_per_sec: peak_redirects_per_sec * inputs.get("redirect_bytes"),
            shards: (links * inputs.get("row_bytes") / inputs.get("shard_bytes")).ceil(),
        }
    }
}

/// The fewest base62 characters that give every link its own code. Counted in integers: a
/// floating-point logarithm puts an exact power of 62 on the wrong side.
fn base62_length(links: f64) -> u32 {
    let links = links.ceil() as u128;
    let (mut length, mut codes) = (1, 62u128);
    while codes < links {
        length += 1;
        codes = codes.saturating_mul(62);
    }
    length
}

/// What this machine measured, beside the estimate it answers.
pub struct Measured {
    pub redirects_per_core: u64,
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
            ("creates", format!("{}/s", count(e.creates_per_sec))),
            (
                "redirects",
                format!(
                    "{}/s average, {}/s at peak",
                    count(e.redirects_per_sec),
                    count(e.peak_redirects_per_sec)
                ),
            ),
            ("links over retention", count(e.links)),
            (
                "code length",
                format!("{} base62 characters", e.code_length),
            ),
            ("storage", bytes(e.storage_bytes)),
            (
                "database shards",
                format!(
                    "{} by the end of the retention, split by code",
                    count(e.shards)
                ),
            ),
            ("cache for the hot set", bytes(e.cache_bytes)),
            (
                "bandwidth out at peak",
                format!("{}/s of redirects", bytes(e.peak_egress_bytes_per_sec)),
            ),
            (
                "ID blocks leased",
                format!("{:.2}/s across the fleet", e.id_blocks_per_sec),
            ),
        ],
    ));
    out.push_str("\nMeasured on this machine:\n");
    match measured {
        Some(m) => {
            let cores = (e.peak_redirects_per_sec / m.redirects_per_core as f64).ceil();
            out.push_str(&crate::indent(
                &format!(
                    "one core serves {} cached redirects/s ({}): the peak above needs {} \
                     core(s) for redirects alone.",
                    count(m.redirects_per_core as f64),
                    m.source,
                    cores
                ),
                "  ",
                "  ",
            ));
        }
        None => out.push_str(
            "  DESIGN.md §8's table could not be read; see its redirect benchmark, \
             loadtests/bench-redirect.sh.\n",
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

        assert!(close(e.creates_per_sec, 1_160.0, 5.0), "{e:?}");
        assert!(close(e.redirects_per_sec, 11_600.0, 50.0), "{e:?}");
        assert!(close(e.peak_redirects_per_sec, 23_200.0, 100.0), "{e:?}");
        assert_eq!(e.links, 365e9);
        assert_eq!(e.code_length, 7);
        // ~80 TB at ~220 B/row.
        assert!(close(e.storage_bytes, 80e12, 1e12), "{e:?}");
        assert_eq!(e.cache_bytes, 1.5e9);
        assert!(close(e.id_blocks_per_sec, 1.0, 0.2), "{e:?}");
        // ~11.6 MB/s of 302s at peak.
        assert!(close(e.peak_egress_bytes_per_sec, 11.6e6, 0.1e6), "{e:?}");
        // ~41 shards of 2 TB.
        assert_eq!(e.shards, 41.0);
    }

    #[test]
    fn xus_hundred_byte_rows_give_his_36_5_terabytes() {
        let mut inputs = inputs();
        inputs.set("row_bytes=100").unwrap();

        assert_eq!(Estimates::from(&inputs).storage_bytes, 36.5e12);
    }

    #[test]
    fn twice_the_links_double_the_rates_the_storage_and_the_bandwidth() {
        let before = Estimates::from(&inputs());
        let mut inputs = inputs();
        inputs.set("links_per_day=200_000_000").unwrap();

        let after = Estimates::from(&inputs);

        assert_eq!(after.creates_per_sec, 2.0 * before.creates_per_sec);
        assert_eq!(after.storage_bytes, 2.0 * before.storage_bytes);
        assert_eq!(
            after.peak_egress_bytes_per_sec,
            2.0 * before.peak_egress_bytes_per_sec
        );
        assert_eq!(after.cache_bytes, before.cache_bytes);
    }

    #[test]
    fn the_code_grows_a_character_past_62_to_the_7th_links() {
        assert_eq!(base62_length(62f64.powi(6)), 6);
        assert_eq!(base62_length(62f64.powi(6) + 1.0), 7);
        assert_eq!(base62_length(62f64.powi(7) + 1.0), 8);
    }
}
