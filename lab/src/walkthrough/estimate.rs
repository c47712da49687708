//! The shortener's back-of-the-envelope numbers, computed from inputs the user can change
//! (`--set links_per_day=200000000`), and unit-tested against DESIGN.md §2's worked example.

use std::fmt::Write as _;

/// What the estimate starts from. The defaults are DESIGN.md §2's: Xu's traffic, this design's
/// row (~220 B with its header and index entry), its hot set and its ID blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub links_per_day: f64,
    pub reads_per_write: f64,
    pub row_bytes: f64,
    pub retention_years: f64,
    pub peak_factor: f64,
    pub hot_links: f64,
    pub cache_entry_bytes: f64,
    pub id_block_size: f64,
}

impl Default for Inputs {
    fn default() -> Self {
        Self {
            links_per_day: 100e6,
            reads_per_write: 10.0,
            row_bytes: 220.0,
            retention_years: 10.0,
            peak_factor: 2.0,
            hot_links: 10e6,
            cache_entry_bytes: 150.0,
            id_block_size: 1_000.0,
        }
    }
}

/// The names `--set` accepts, in the order they are printed.
pub const NAMES: [&str; 8] = [
    "links_per_day",
    "reads_per_write",
    "row_bytes",
    "retention_years",
    "peak_factor",
    "hot_links",
    "cache_entry_bytes",
    "id_block_size",
];

impl Inputs {
    /// Applies one `name=value` (`100000000`, `100_000_000` and `1e8` all read as 10^8).
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("--set {assignment:?}: expected name=value"))?;
        let value: f64 = value
            .trim()
            .replace('_', "")
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v > 0.0)
            .ok_or_else(|| format!("--set {name}: {value:?} is not a positive number"))?;
        *self.field(name.trim()).ok_or_else(|| {
            format!(
                "--set {name}: unknown input; the inputs are {}",
                NAMES.join(", ")
            )
        })? = value;
        Ok(())
    }

    fn field(&mut self, name: &str) -> Option<&mut f64> {
        Some(match name {
            "links_per_day" => &mut self.links_per_day,
            "reads_per_write" => &mut self.reads_per_write,
            "row_bytes" => &mut self.row_bytes,
            "retention_years" => &mut self.retention_years,
            "peak_factor" => &mut self.peak_factor,
            "hot_links" => &mut self.hot_links,
            "cache_entry_bytes" => &mut self.cache_entry_bytes,
            "id_block_size" => &mut self.id_block_size,
            _ => return None,
        })
    }

    fn values(&self) -> [f64; 8] {
        [
            self.links_per_day,
            self.reads_per_write,
            self.row_bytes,
            self.retention_years,
            self.peak_factor,
            self.hot_links,
            self.cache_entry_bytes,
            self.id_block_size,
        ]
    }
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
}

const SECONDS_PER_DAY: f64 = 86_400.0;

impl Estimates {
    pub fn from(inputs: &Inputs) -> Self {
        let creates_per_sec = inputs.links_per_day / SECONDS_PER_DAY;
        let redirects_per_sec = creates_per_sec * inputs.reads_per_write;
        let links = inputs.links_per_day * 365.0 * inputs.retention_years;
        Self {
            creates_per_sec,
            redirects_per_sec,
            peak_redirects_per_sec: redirects_per_sec * inputs.peak_factor,
            links,
            code_length: base62_length(links),
            storage_bytes: links * inputs.row_bytes,
            cache_bytes: inputs.hot_links * inputs.cache_entry_bytes,
            id_blocks_per_sec: creates_per_sec / inputs.id_block_size,
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
    let mut out = String::from("Inputs (change with --set name=value):\n");
    for (name, value) in NAMES.iter().zip(inputs.values()) {
        let _ = writeln!(out, "  {name:<20} {}", count(value));
    }
    out.push_str("\nEstimates:\n");
    let rows = [
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
        ("cache for the hot set", bytes(e.cache_bytes)),
        (
            "ID blocks leased",
            format!("{:.2}/s across the fleet", e.id_blocks_per_sec),
        ),
    ];
    for (what, value) in rows {
        let _ = writeln!(out, "  {what:<22} {value}");
    }
    out.push_str("\nMeasured on this machine:\n");
    match measured {
        Some(m) => {
            let cores = (e.peak_redirects_per_sec / m.redirects_per_core as f64).ceil();
            out.push_str(&super::indent(
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

/// `11,574`, `365,000,000,000`: whole numbers with thousands separators.
fn count(value: f64) -> String {
    let digits = format!("{:.0}", value.round());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Decimal units, as DESIGN.md counts them (36.5 TB is 36.5 × 10^12 bytes).
fn bytes(value: f64) -> String {
    let units = [
        ("PB", 1e15),
        ("TB", 1e12),
        ("GB", 1e9),
        ("MB", 1e6),
        ("kB", 1e3),
    ];
    units
        .iter()
        .find(|(_, size)| value >= *size)
        .map(|(unit, size)| format!("{:.1} {unit}", value / size))
        .unwrap_or_else(|| format!("{value:.0} B"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, within: f64) -> bool {
        (actual - expected).abs() <= within
    }

    #[test]
    fn the_defaults_give_design_md_section_2s_numbers() {
        let e = Estimates::from(&Inputs::default());

        assert!(close(e.creates_per_sec, 1_160.0, 5.0), "{e:?}");
        assert!(close(e.redirects_per_sec, 11_600.0, 50.0), "{e:?}");
        assert!(close(e.peak_redirects_per_sec, 23_200.0, 100.0), "{e:?}");
        assert_eq!(e.links, 365e9);
        assert_eq!(e.code_length, 7);
        // ~80 TB at ~220 B/row.
        assert!(close(e.storage_bytes, 80e12, 1e12), "{e:?}");
        assert_eq!(e.cache_bytes, 1.5e9);
        assert!(close(e.id_blocks_per_sec, 1.0, 0.2), "{e:?}");
    }

    #[test]
    fn xus_hundred_byte_rows_give_his_36_5_terabytes() {
        let mut inputs = Inputs::default();
        inputs.set("row_bytes=100").unwrap();

        assert_eq!(Estimates::from(&inputs).storage_bytes, 36.5e12);
    }

    #[test]
    fn twice_the_links_double_the_rates_and_the_storage() {
        let before = Estimates::from(&Inputs::default());
        let mut inputs = Inputs::default();
        inputs.set("links_per_day=200_000_000").unwrap();

        let after = Estimates::from(&inputs);

        assert_eq!(after.creates_per_sec, 2.0 * before.creates_per_sec);
        assert_eq!(after.storage_bytes, 2.0 * before.storage_bytes);
        assert_eq!(after.cache_bytes, before.cache_bytes);
    }

    #[test]
    fn the_code_grows_a_character_past_62_to_the_7th_links() {
        assert_eq!(base62_length(62f64.powi(6)), 6);
        assert_eq!(base62_length(62f64.powi(6) + 1.0), 7);
        assert_eq!(base62_length(62f64.powi(7) + 1.0), 8);
    }

    #[test]
    fn an_unknown_input_or_a_bad_value_is_refused_by_name() {
        let mut inputs = Inputs::default();

        let unknown = inputs.set("users=5").unwrap_err();
        let negative = inputs.set("peak_factor=-1").unwrap_err();

        assert!(unknown.contains("links_per_day"), "{unknown}");
        assert!(negative.contains("peak_factor"), "{negative}");
        assert_eq!(inputs, Inputs::default());
    }

    #[test]
    fn numbers_print_as_design_md_writes_them() {
        assert_eq!(count(365e9), "365,000,000,000");
        assert_eq!(count(1_157.4), "1,157");
        assert_eq!(bytes(36.5e12), "36.5 TB");
        assert_eq!(bytes(1.5e9), "1.5 GB");
    }
}
