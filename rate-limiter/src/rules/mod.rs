//! The rules: what a rule is, and the file they are read from.
//!
//! - `rule.rs`: a rule as the rest of the crate holds it ([`Rule`]): its name, algorithm, shadow
//!   mode and failure policy, and for the gateway and the tower layer, which requests it applies
//!   to ([`Matcher`]) and whom it counts ([`ClientSource`], [`ClientKey`]).
//! - `file.rs`: the rules file, TOML or YAML, read and checked once at start ([`load`],
//!   [`parse`]), every mistake reported with its line and column.
//! - `callers.rs`: who may ask the decision API about which rules ([`Callers`]), granted in the
//!   same file.
//! - `tests.rs`: matching, and reading the file.
//!
//! Which file to read is a setting (`RATE_LIMITER_CONFIG` or `--config`, in `settings.rs`);
//! what is in it is this module's business.

mod callers;
mod file;
mod rule;
#[cfg(test)]
mod tests;

pub use callers::{Caller, Callers, Grant};
pub use file::{
    DEFAULT_RULES, FileError, Format, MAX_GATEWAY_HOLD, MAX_TIMEOUT, RulesFile, load, parse,
};
pub use rule::{ClientKey, ClientSource, FailMode, FailurePolicy, Matcher, Rule, RuleName};
