//! What every system's estimate shares: its inputs, which the user changes with `--set
//! name=value`, and how numbers are printed. The formulas are each system's own
//! (`shortener/estimate.rs`), unit-tested against its DESIGN.md's worked example.

use std::fmt::Write as _;

/// One input of an estimate: its name for `--set`, its value, and what it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Input {
    pub name: &'static str,
    pub value: f64,
    pub about: &'static str,
}

/// A system's inputs, in the order they are printed; the defaults are its DESIGN.md's.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs(Vec<Input>);

impl Inputs {
    pub fn new(defaults: &[(&'static str, f64, &'static str)]) -> Self {
        Self(
            defaults
                .iter()
                .map(|&(name, value, about)| Input { name, value, about })
                .collect(),
        )
    }

    /// Applies one `name=value` (`100000000`, `100_000_000` and `1e8` all read as 10^8). A bad
    /// name or value changes nothing and says which are valid.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("--set {assignment:?}: expected name=value"))?;
        let name = name.trim();
        let names = || {
            self.0
                .iter()
                .map(|input| input.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(at) = self.0.iter().position(|input| input.name == name) else {
            return Err(format!(
                "--set {name}: unknown input; the inputs are {}",
                names()
            ));
        };
        let value: f64 = value
            .trim()
            .replace('_', "")
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v > 0.0)
            .ok_or_else(|| format!("--set {name}: {value:?} is not a positive number"))?;
        self.0[at].value = value;
        Ok(())
    }

    /// Every input, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Input> {
        self.0.iter()
    }

    /// The value of `name`.
    ///
    /// # Panics
    /// If the system has no such input: a mistake in its estimate's code, which its tests catch.
    pub fn get(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|input| input.name == name)
            .unwrap_or_else(|| panic!("the estimate has no input {name:?}"))
            .value
    }

    /// The inputs as the walkthrough prints them, above the estimates.
    pub fn render(&self) -> String {
        let mut out = String::from("Inputs (change with --set name=value):\n");
        for input in &self.0 {
            let _ = writeln!(
                out,
                "  {:<22} {:>16}  {}",
                input.name,
                number(input.value),
                input.about
            );
        }
        out
    }
}

/// The cells of a row of a markdown table (`| a | b |`), trimmed: how each system reads what its
/// DESIGN.md measured, by the table's header.
pub fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

/// Whether an estimate is its design doc's figure, within the doc's rounding.
#[cfg(test)]
pub fn close(actual: f64, expected: f64, within: f64) -> bool {
    (actual - expected).abs() <= within
}

/// Rows of `what: value`, aligned, under a heading.
pub fn table(heading: &str, rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(what, _)| what.len()).max().unwrap_or(0);
    let mut out = format!("{heading}\n");
    for (what, value) in rows {
        let _ = writeln!(out, "  {what:<width$}  {value}");
    }
    out
}

/// An input as it reads best: whole numbers with separators, fractions with two decimals.
fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        count(value)
    } else {
        format!("{value:.2}")
    }
}

/// `11,574`, `365,000,000,000`: whole numbers with thousands separators.
pub fn count(value: f64) -> String {
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

/// Decimal units, as the design docs count them (36.5 TB is 36.5 × 10^12 bytes).
pub fn bytes(value: f64) -> String {
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

    fn inputs() -> Inputs {
        Inputs::new(&[
            ("links_per_day", 100e6, "new links a day"),
            ("peak_factor", 2.0, "peak over average"),
        ])
    }

    #[test]
    fn a_value_is_read_with_separators_or_an_exponent() {
        let mut inputs = inputs();

        inputs.set("links_per_day=200_000_000").unwrap();
        assert_eq!(inputs.get("links_per_day"), 2e8);
        inputs.set(" links_per_day = 1e9").unwrap();
        assert_eq!(inputs.get("links_per_day"), 1e9);
    }

    #[test]
    fn an_unknown_input_or_a_bad_value_is_refused_by_name_and_changes_nothing() {
        let mut inputs = inputs();

        let unknown = inputs.set("users=5").unwrap_err();
        let negative = inputs.set("peak_factor=-1").unwrap_err();
        let missing = inputs.set("peak_factor").unwrap_err();

        assert!(unknown.contains("links_per_day, peak_factor"), "{unknown}");
        assert!(negative.contains("peak_factor"), "{negative}");
        assert!(missing.contains("name=value"), "{missing}");
        assert_eq!(inputs, self::inputs());
    }

    #[test]
    fn numbers_print_as_the_design_docs_write_them() {
        assert_eq!(count(365e9), "365,000,000,000");
        assert_eq!(count(1_157.4), "1,157");
        assert_eq!(bytes(36.5e12), "36.5 TB");
        assert_eq!(bytes(1.5e9), "1.5 GB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(number(1.5), "1.50");
    }
}
