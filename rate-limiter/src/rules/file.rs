//! The rules file, in TOML or YAML (chosen by the extension).
//!
//! ```toml
//! [rules.per-user]
//! algorithm = "token_bucket"   # token_bucket, leaky_bucket, fixed_window, sliding_log, sliding_counter
//! rate = 10                    # token and leaky bucket: `rate` per `per`…
//! per = "1s"
//! burst = 20                   # …and `burst` (token) or `capacity` (leaky)
//!
//! [rules.login]
//! algorithm = "sliding_log"
//! limit = 5                    # the windowed algorithms: `limit` per `window`
//! window = "1m"
//! on_failure = "closed"        # open (default) or closed, when Redis fails…
//! timeout = "100ms"            # …or does not answer within this (default 50ms)
//! shadow = false               # true: decide and record, never reject
//!
//! [rules.api-by-ip]
//! algorithm = "fixed_window"
//! limit = 100
//! window = "1m"
//! match = { path_prefix = "/api/", methods = ["POST"], client = "ip" }  # for the gateway
//! ```
//!
//! `client` is `ip`, `api_key` or `header:<name>`. Who may check which rules through the decision
//! API is a `[callers.<name>]` table each (`callers.rs`). Rules and callers are maps, so a name
//! given twice is a parse error in either format. Every mistake is reported with the file, a line
//! and a column, and an unknown field is a mistake (a typo like `burts` must not silently mean the
//! default).

use std::{collections::BTreeMap, fmt, marker::PhantomData, path::Path, time::Duration};

use axum::http::{HeaderName, Method};
use serde::{Deserialize, Deserializer};

use super::{
    callers::Grant,
    rule::{ClientSource, FailMode, FailurePolicy, Matcher, Rule, RuleName},
};
use crate::algorithm::Algorithm;

/// The longest a leaky bucket with a `match` may hold a request (its capacity × interval): the
/// gateway gives each request 30 s in all, and its upstream 20 of them.
pub const MAX_GATEWAY_HOLD: Duration = Duration::from_secs(10);

/// The longest a rule may wait for its store. The Redis connection gives up after a second
/// whatever the rule says, and a limiter that waits longer has failed its caller already.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(1);

/// The shortest: below a millisecond no store answers, in process or over loopback, so every
/// decision would fail open or closed.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The rules the service starts with when no file is given: `rate-limiter/rules.toml`.
pub const DEFAULT_RULES: &str = include_str!("../../rules.toml");

/// A rules file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    pub file: String,
    /// One-based; absent when the error has no position (an unreadable file).
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.file, self.message)
            }
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// What a rules file holds: the rules, and the callers of the decision API with their grants.
#[derive(Debug, Clone, Default)]
pub struct RulesFile {
    pub rules: Vec<Rule>,
    pub callers: Vec<Grant>,
}

/// Rules alone, with no caller granted any (tests and benchmarks that build a limiter directly).
impl From<Vec<Rule>> for RulesFile {
    fn from(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            callers: Vec::new(),
        }
    }
}

/// The formats a rules file may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

/// Reads the rules from `path`: TOML for `.toml`, YAML for `.yaml` and `.yml`.
pub fn load(path: &Path) -> Result<RulesFile, FileError> {
    let file = path.display().to_string();
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Format::Toml,
        Some("yaml" | "yml") => Format::Yaml,
        _ => {
            return Err(FileError {
                file,
                line: None,
                column: None,
                message: "the rules file must end in .toml, .yaml or .yml".into(),
            });
        }
    };
    let text = std::fs::read_to_string(path).map_err(|err| FileError {
        file: file.clone(),
        line: None,
        column: None,
        message: err.to_string(),
    })?;
    parse(&text, format, &file)
}

/// Parses rules from `text`; `file` names it in errors.
pub fn parse(text: &str, format: Format, file: &str) -> Result<RulesFile, FileError> {
    let error = |line, column, message: String| FileError {
        file: file.to_owned(),
        line,
        column,
        message,
    };
    let raw: RawFile = match format {
        Format::Toml => toml::from_str(text).map_err(|err| {
            let (line, column) = err
                .span()
                .map(|span| line_and_column(text, span.start))
                .unzip();
            error(line, column, err.message().to_owned())
        })?,
        Format::Yaml => serde_norway::from_str(text).map_err(|err| {
            let location = err.location();
            // serde_norway's message ends with " at line L column C"; the position is ours to
            // print.
            let message = err.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            error(
                location.as_ref().map(|l| l.line()),
                location.as_ref().map(|l| l.column()),
                message,
            )
        })?,
    };
    if raw.rules.is_empty() {
        return Err(error(
            None,
            None,
            "define at least one rule under `rules`".into(),
        ));
    }
    let rules: Vec<Rule> = raw
        .rules
        .into_iter()
        .map(|(name, rule)| Rule {
            name,
            algorithm: rule.0.algorithm,
            shadow: rule.0.shadow,
            failure: rule.0.failure,
            matcher: rule.0.matcher,
        })
        .collect();
    let mut callers = Vec::with_capacity(raw.callers.len());
    for (name, caller) in raw.callers {
        let refuse = |message: String| error(None, None, format!("callers.{name}: {message}"));
        let key_sha256 = caller.key_sha256.to_ascii_lowercase();
        if key_sha256.len() != 64 || !key_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refuse(
                "`key_sha256` must be the SHA-256 of the caller's key: 64 hex digits".into(),
            ));
        }
        if callers
            .iter()
            .any(|other: &Grant| other.key_sha256 == key_sha256)
        {
            return Err(refuse(
                "`key_sha256` is another caller's: one key, one caller".into(),
            ));
        }
        for granted in &caller.rules {
            match rules.iter().find(|rule| &rule.name == granted) {
                None => return Err(refuse(format!("no rule is named `{granted}`"))),
                Some(rule) if rule.matcher.is_some() => {
                    return Err(refuse(format!(
                        "`{granted}` has a `match`: the gateway's rules are counted by the \
                         gateway alone"
                    )));
                }
                Some(_) => {}
            }
        }
        callers.push(Grant {
            name,
            key_sha256,
            rules: caller.rules,
        });
    }
    Ok(RulesFile { rules, callers })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(deserialize_with = "unique_rules")]
    rules: BTreeMap<RuleName, Checked>,
    #[serde(default, deserialize_with = "unique_callers")]
    callers: BTreeMap<String, RawCaller>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaller {
    key_sha256: String,
    rules: Vec<RuleName>,
}

fn unique_rules<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<RuleName, Checked>, D::Error> {
    unique_names("rule", deserializer)
}

fn unique_callers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, RawCaller>, D::Error> {
    unique_names("caller", deserializer)
}

/// A map of rules or callers that refuses a name given twice. TOML's parser already does; a YAML
/// mapping would otherwise keep the last one silently, and a caller written twice would lose its
/// first key without a word.
fn unique_names<'de, K, V, D>(
    what: &'static str,
    deserializer: D,
) -> Result<BTreeMap<K, V>, D::Error>
where
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
    D: Deserializer<'de>,
{
    struct Unique<K, V> {
        what: &'static str,
        entries: PhantomData<(K, V)>,
    }

    impl<'de, K, V> serde::de::Visitor<'de> for Unique<K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a map of {0} names to {0}s", self.what)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries = BTreeMap::new();
            while let Some(name) = map.next_key::<K>()? {
                if entries.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "the {} `{name}` is defined twice",
                        self.what
                    )));
                }
                let value = map.next_value()?;
                entries.insert(name, value);
            }
            Ok(entries)
        }
    }

    deserializer.deserialize_map(Unique {
        what,
        entries: PhantomData,
    })
}

impl<'de> Deserialize<'de> for RuleName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        RuleName::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A rule whose fields fit its algorithm; checked while deserializing, so that the parser
/// attaches the rule's position to any error.
#[derive(Deserialize)]
#[serde(try_from = "RawRule")]
struct Checked(Parsed);

struct Parsed {
    algorithm: Algorithm,
    shadow: bool,
    failure: FailurePolicy,
    matcher: Option<Matcher>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    algorithm: AlgorithmName,
    rate: Option<u64>,
    per: Option<Span>,
    burst: Option<u64>,
    capacity: Option<u64>,
    limit: Option<u64>,
    window: Option<Span>,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    on_failure: Option<RawFailMode>,
    timeout: Option<Span>,
    #[serde(rename = "match")]
    matcher: Option<RawMatcher>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AlgorithmName {
    TokenBucket,
    LeakyBucket,
    FixedWindow,
    SlidingLog,
    SlidingCounter,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawFailMode {
    Open,
    Closed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatcher {
    #[serde(default = "root")]
    path_prefix: String,
    #[serde(default)]
    methods: Vec<String>,
    client: String,
}

fn root() -> String {
    "/".into()
}

/// A duration written as `250ms`, `1s`, `1m`, `1h`, `1day`.
#[derive(Clone, Copy)]
struct Span(Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map(Span).map_err(|err| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({err}); write it like `250ms`, `1s` or `1m`"
            ))
        })
    }
}

impl TryFrom<RawRule> for Checked {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        use AlgorithmName::*;
        let name = raw.algorithm;
        // Each algorithm takes exactly its own parameters; another's is a mistake worth naming.
        let given = [
            ("rate", raw.rate.is_some()),
            ("per", raw.per.is_some()),
            ("burst", raw.burst.is_some()),
            ("capacity", raw.capacity.is_some()),
            ("limit", raw.limit.is_some()),
            ("window", raw.window.is_some()),
        ];
        let wanted: &[&str] = match name {
            TokenBucket => &["rate", "per", "burst"],
            LeakyBucket => &["rate", "per", "capacity"],
            FixedWindow | SlidingLog | SlidingCounter => &["limit", "window"],
        };
        let algorithm_name = format!("{name:?}");
        for (field, present) in given {
            if present && !wanted.contains(&field) {
                return Err(format!(
                    "`{field}` does not apply to {}; it takes {}",
                    snake(&algorithm_name),
                    list(wanted)
                ));
            }
            if !present && wanted.contains(&field) {
                return Err(format!(
                    "{} needs {}; `{field}` is missing",
                    snake(&algorithm_name),
                    list(wanted)
                ));
            }
        }
        let (rate, per) = (
            raw.rate.unwrap_or(0),
            raw.per.map(|s| s.0).unwrap_or_default(),
        );
        let (limit, window) = (
            raw.limit.unwrap_or(0),
            raw.window.map(|s| s.0).unwrap_or_default(),
        );
        let algorithm = match name {
            TokenBucket => Algorithm::TokenBucket(crate::algorithm::TokenBucket::new(
                rate,
                per,
                raw.burst.unwrap_or(0),
            )?),
            LeakyBucket => Algorithm::LeakyBucket(crate::algorithm::LeakyBucket::new(
                rate,
                per,
                raw.capacity.unwrap_or(0),
            )?),
            FixedWindow => {
                Algorithm::FixedWindow(crate::algorithm::FixedWindow::new(limit, window)?)
            }
            SlidingLog => Algorithm::SlidingLog(crate::algorithm::SlidingLog::new(limit, window)?),
            SlidingCounter => {
                Algorithm::SlidingCounter(crate::algorithm::SlidingCounter::new(limit, window)?)
            }
        };

        let mut failure = FailurePolicy::default();
        if let Some(mode) = raw.on_failure {
            failure.mode = match mode {
                RawFailMode::Open => FailMode::Open,
                RawFailMode::Closed => FailMode::Closed,
            };
        }
        if let Some(Span(timeout)) = raw.timeout {
            if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&timeout) {
                return Err("`timeout` must be between 1ms and 1s".into());
            }
            failure.timeout = timeout;
        }
        let matcher = raw.matcher.map(RawMatcher::parse).transpose()?;
        if let (Algorithm::LeakyBucket(bucket), Some(_)) = (&algorithm, &matcher)
            && Duration::from_nanos(bucket.tolerance()) > MAX_GATEWAY_HOLD
        {
            return Err(format!(
                "a leaky bucket with a `match` holds requests in the gateway, so its capacity × \
                 interval must be at most {}s; this one is {:?}",
                MAX_GATEWAY_HOLD.as_secs(),
                Duration::from_nanos(bucket.tolerance())
            ));
        }
        Ok(Checked(Parsed {
            algorithm,
            shadow: raw.shadow,
            failure,
            matcher,
        }))
    }
}

impl From<crate::algorithm::InvalidAlgorithm> for String {
    fn from(err: crate::algorithm::InvalidAlgorithm) -> Self {
        err.0.to_owned()
    }
}

impl RawMatcher {
    fn parse(self) -> Result<Matcher, String> {
        if !self.path_prefix.starts_with('/') {
            return Err(format!(
                "`path_prefix` must start with `/`, not `{}`",
                self.path_prefix
            ));
        }
        let methods = self
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("`{m}` is not an HTTP method"))
            })
            .collect::<Result<_, _>>()?;
        let client = match self.client.as_str() {
            "ip" => ClientSource::Ip,
            "api_key" => ClientSource::ApiKey,
            other => match other.strip_prefix("header:") {
                Some(name) => ClientSource::Header(
                    HeaderName::try_from(name)
                        .map_err(|_| format!("`{name}` is not a header name"))?,
                ),
                None => {
                    return Err(format!(
                        "`client` is `ip`, `api_key` or `header:<name>`, not `{other}`"
                    ));
                }
            },
        };
        Ok(Matcher {
            path_prefix: self.path_prefix,
            methods,
            client,
        })
    }
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn list(fields: &[&str]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}
