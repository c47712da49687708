//! The rate limiter's rules file, `rules::parse` (rate-limiter/src/rules/file.rs), in both of
//! its formats, TOML and YAML.
//!
//! Two kinds of input:
//! - any text, read as TOML and as YAML. What is accepted keeps the file's limits (below), and an
//!   error's position is inside the text;
//! - a rules file built from fuzzed fields and written in both formats. The two must be read
//!   alike (accepted or refused together, into the same rules), and what is accepted must be
//!   what was written: every rule and caller, no more, and each limit never more generous than
//!   the one written. The token bucket's `interval` is recomputed here in 128 bits, so an
//!   overflow in the parser's arithmetic shows as a difference.
//!
//! The file's limits, checked on everything accepted: rule names of 1 to 64 of
//! `A-Z a-z 0-9 - _ .`; every algorithm at least one unit and its window or refill time at most
//! a year, in whole microseconds; a sliding log at most 10,000; a sliding counter's
//! limit × window (µs) below 2^52; timeouts of 1 ms to 1 s; a leaky bucket with a
//! `match` holding a request at most 10 s; callers with distinct lower-case SHA-256 digests,
//! granted only rules that exist and have no `match`.

#![no_main]

use std::{collections::BTreeSet, fmt::Write, time::Duration};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rate_limiter::{
    algorithm::{Algorithm, MAX_WINDOW, SlidingLog},
    rules::{
        ClientSource, FailMode, FileError, Format, MAX_GATEWAY_HOLD, MAX_TIMEOUT, Rule, RulesFile,
        parse,
    },
};

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    Text(&'a str),
    Written(Spec),
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Text(text) => {
        for format in [Format::Toml, Format::Yaml] {
            match parse(text, format, "rules") {
                Ok(file) => keeps_the_limits(&file),
                Err(err) => points_inside(&err, text),
            }
        }
    }
    Input::Written(spec) => {
        let toml = spec.toml();
        let yaml = spec.yaml();
        let from_toml = parse(&toml, Format::Toml, "rules.toml");
        let from_yaml = parse(&yaml, Format::Yaml, "rules.yaml");
        for (text, read) in [(&toml, &from_toml), (&yaml, &from_yaml)] {
            match read {
                Ok(file) => {
                    keeps_the_limits(file);
                    is_what_was_written(file, &spec, text);
                }
                Err(err) => points_inside(err, text),
            }
        }
        // TOML's integers are i64, where YAML reads the whole u64 range; YAML's keys without a
        // `?` are at most 1,024 characters (YAML 1.2 §7.4.2), where TOML's are any length.
        if !spec.has_number_above_i64() && !spec.has_long_key() {
            match (&from_toml, &from_yaml) {
                (Ok(a), Ok(b)) => assert_eq!(summary(a), summary(b), "{toml}\n---\n{yaml}"),
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "read differently:\n{toml}\n=> {:?}\n---\n{yaml}\n=> {:?}",
                    from_toml.as_ref().map(summary),
                    from_yaml.as_ref().map(summary)
                ),
            }
        }
    }
});

fn keeps_the_limits(file: &RulesFile) {
    assert!(!file.rules.is_empty());
    let mut names = BTreeSet::new();
    for rule in &file.rules {
        let name = rule.name.as_str();
        assert!(names.insert(name), "{name} twice");
        assert!((1..=64).contains(&name.len()), "{name:?}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{name:?}"
        );

        let algorithm = &rule.algorithm;
        assert!(algorithm.capacity() >= 1, "{rule:?}");
        let window = algorithm.window();
        assert!(window > Duration::ZERO, "{rule:?}");
        assert!(window.as_nanos() <= u128::from(MAX_WINDOW), "{rule:?}");
        match algorithm {
            Algorithm::TokenBucket(a) => assert!(a.interval > 0 && a.interval % 1000 == 0),
            Algorithm::LeakyBucket(a) => assert!(a.interval() > 0 && a.interval() % 1000 == 0),
            Algorithm::FixedWindow(a) => assert_eq!(a.window % 1000, 0),
            Algorithm::SlidingLog(a) => {
                assert_eq!(a.window % 1000, 0);
                assert!(a.limit <= SlidingLog::MAX_LIMIT);
            }
            Algorithm::SlidingCounter(a) => {
                assert_eq!(a.window % 1000, 0);
                assert!(u128::from(a.limit) * u128::from(a.window / 1000) < 1 << 52);
            }
        }

        let timeout = rule.failure.timeout;
        assert!(
            timeout >= Duration::from_millis(1) && timeout <= MAX_TIMEOUT,
            "{rule:?}"
        );
        if let Some(matcher) = &rule.matcher {
            assert!(matcher.path_prefix.starts_with('/'), "{rule:?}");
            if let Algorithm::LeakyBucket(bucket) = algorithm {
                assert!(Duration::from_nanos(bucket.tolerance()) <= MAX_GATEWAY_HOLD);
            }
        }
    }

    let mut keys = BTreeSet::new();
    for grant in &file.callers {
        let key = grant.key_sha256.as_str();
        assert!(keys.insert(key), "{key} granted twice");
        assert_eq!(key.len(), 64);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        for granted in &grant.rules {
            let rule = file.rules.iter().find(|r| r.name == *granted);
            assert!(
                rule.is_some_and(|r| r.matcher.is_none()),
                "{granted} granted"
            );
        }
    }
}

fn points_inside(err: &FileError, text: &str) {
    assert!(!err.message.is_empty());
    if let Some(line) = err.line {
        // YAML 1.1 also breaks lines at CR, NEL, LS and PS.
        let lines = text
            .matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
            .count()
            + 1;
        assert!(
            (1..=lines + 1).contains(&line),
            "line {line} of {lines}: {err}"
        );
    }
    if let Some(column) = err.column {
        assert!(
            (1..=text.len() + 2).contains(&column),
            "column {column}: {err}"
        );
    }
}

/// What a parsed file says, in a form two parses can be compared by.
fn summary(file: &RulesFile) -> String {
    let mut out = String::new();
    for rule in &file.rules {
        let Rule {
            name,
            algorithm,
            shadow,
            failure,
            matcher,
        } = rule;
        let matcher = matcher
            .as_ref()
            .map(|m| format!("{} {:?} {:?}", m.path_prefix, m.methods, m.client));
        writeln!(out, "{name} {algorithm:?} {shadow} {failure:?} {matcher:?}").unwrap();
    }
    writeln!(out, "{:?}", file.callers).unwrap();
    out
}

fn is_what_was_written(file: &RulesFile, spec: &Spec, text: &str) {
    let written: BTreeSet<String> = spec.rules.iter().map(|r| r.name.text()).collect();
    assert_eq!(
        written.len(),
        spec.rules.len(),
        "a rule name given twice was accepted:\n{text}"
    );
    let read: BTreeSet<String> = file.rules.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(read, written, "{text}");

    for rule in &file.rules {
        let spec = spec
            .rules
            .iter()
            .find(|s| s.name.text() == rule.name.as_str())
            .unwrap();
        is_the_rule_written(rule, spec, text);
    }

    let written: BTreeSet<String> = spec.callers.iter().map(|c| c.name.text()).collect();
    assert_eq!(
        written.len(),
        spec.callers.len(),
        "a caller given twice was accepted:\n{text}"
    );
    let read: BTreeSet<String> = file.callers.iter().map(|g| g.name.clone()).collect();
    assert_eq!(read, written, "{text}");
    for grant in &file.callers {
        let spec = spec
            .callers
            .iter()
            .find(|c| c.name.text() == grant.name)
            .unwrap();
        assert_eq!(
            grant.key_sha256,
            spec.key.text().to_ascii_lowercase(),
            "{text}"
        );
        let rules: Vec<String> = grant.rules.iter().map(|r| r.to_string()).collect();
        let granted: Vec<String> = spec.rules.iter().map(Name::text).collect();
        assert_eq!(rules, granted, "{text}");
    }
}

fn is_the_rule_written(rule: &Rule, spec: &RuleSpec, text: &str) {
    let span = |s: &Option<Span>| humantime::parse_duration(&s.as_ref().unwrap().text()).unwrap();
    match (&rule.algorithm, &spec.algorithm) {
        (Algorithm::TokenBucket(a), AlgorithmSpec::TokenBucket) => {
            let per = span(&spec.per);
            assert_eq!(
                a.interval,
                interval(spec.rate.unwrap().get(), per),
                "{text}"
            );
            assert_eq!(a.burst, spec.burst.unwrap().get(), "{text}");
            never_faster(a.interval, spec.rate.unwrap().get(), per, text);
        }
        (Algorithm::LeakyBucket(a), AlgorithmSpec::LeakyBucket) => {
            let per = span(&spec.per);
            assert_eq!(
                a.interval(),
                interval(spec.rate.unwrap().get(), per),
                "{text}"
            );
            assert_eq!(a.capacity(), spec.capacity.unwrap().get(), "{text}");
            never_faster(a.interval(), spec.rate.unwrap().get(), per, text);
        }
        (Algorithm::FixedWindow(a), AlgorithmSpec::FixedWindow) => {
            assert_eq!((a.limit, u128::from(a.window)), windowed(spec), "{text}");
        }
        (Algorithm::SlidingLog(a), AlgorithmSpec::SlidingLog) => {
            assert_eq!((a.limit, u128::from(a.window)), windowed(spec), "{text}");
        }
        (Algorithm::SlidingCounter(a), AlgorithmSpec::SlidingCounter) => {
            assert_eq!((a.limit, u128::from(a.window)), windowed(spec), "{text}");
        }
        (read, written) => panic!("{written:?} was read as {read:?}:\n{text}"),
    }

    assert_eq!(rule.shadow, spec.shadow.unwrap_or(false), "{text}");
    let mode = match spec.on_failure {
        None | Some(FailSpec::Open) => FailMode::Open,
        Some(FailSpec::Closed) => FailMode::Closed,
        Some(FailSpec::Other(_)) => panic!("an unknown failure mode was accepted:\n{text}"),
    };
    assert_eq!(rule.failure.mode, mode, "{text}");
    let timeout = spec
        .timeout
        .as_ref()
        .map_or(Duration::from_millis(50), |t| {
            humantime::parse_duration(&t.text()).unwrap()
        });
    assert_eq!(rule.failure.timeout, timeout, "{text}");

    match (&rule.matcher, &spec.matcher) {
        (None, None) => {}
        (Some(read), Some(written)) => {
            let prefix = written.path_prefix.as_deref().unwrap_or("/");
            assert_eq!(read.path_prefix, prefix, "{text}");
            let methods: Vec<String> = read.methods.iter().map(|m| m.to_string()).collect();
            let spelled: Vec<String> = written
                .methods
                .iter()
                .map(|m| m.text().to_ascii_uppercase())
                .collect();
            assert_eq!(methods, spelled, "{text}");
            let client = match &read.client {
                ClientSource::Ip => "ip".to_owned(),
                ClientSource::ApiKey => "api_key".to_owned(),
                ClientSource::Header(name) => format!("header:{name}"),
            };
            assert_eq!(
                client.to_ascii_lowercase(),
                written.client.text().to_ascii_lowercase()
            );
        }
        (read, written) => panic!("{written:?} was read as {read:?}:\n{text}"),
    }
}

/// The token bucket's interval as the file documents it: `per / rate`, rounded up to a whole
/// microsecond, worked out in 128 bits.
fn interval(rate: u64, per: Duration) -> u64 {
    let nanos = per.as_nanos().div_ceil(u128::from(rate));
    let micros = nanos.div_ceil(1000);
    u64::try_from(micros * 1000).expect("an accepted interval fits in u64")
}

/// `rate` units every `interval` is never more than `rate` per `per`.
fn never_faster(interval: u64, rate: u64, per: Duration, text: &str) {
    assert!(
        u128::from(interval) * u128::from(rate) >= per.as_nanos(),
        "{text}"
    );
}

fn windowed(spec: &RuleSpec) -> (u64, u128) {
    let window = humantime::parse_duration(&spec.window.as_ref().unwrap().text()).unwrap();
    (spec.limit.unwrap().get(), window.as_nanos())
}

// The written file.

#[derive(Debug, Arbitrary)]
struct Spec {
    rules: Vec<RuleSpec>,
    callers: Vec<CallerSpec>,
}

#[derive(Debug, Arbitrary)]
struct RuleSpec {
    name: Name,
    algorithm: AlgorithmSpec,
    rate: Option<Number>,
    per: Option<Span>,
    burst: Option<Number>,
    capacity: Option<Number>,
    limit: Option<Number>,
    window: Option<Span>,
    shadow: Option<bool>,
    on_failure: Option<FailSpec>,
    timeout: Option<Span>,
    matcher: Option<MatcherSpec>,
}

#[derive(Debug, Arbitrary)]
enum AlgorithmSpec {
    TokenBucket,
    LeakyBucket,
    FixedWindow,
    SlidingLog,
    SlidingCounter,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum FailSpec {
    Open,
    Closed,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct MatcherSpec {
    path_prefix: Option<String>,
    methods: Vec<Name>,
    client: Name,
}

#[derive(Debug, Arbitrary)]
struct CallerSpec {
    name: Name,
    key: Key,
    rules: Vec<Name>,
}

/// A name, mostly from a list of ones that mean something (so that rules, grants, methods and
/// clients meet), sometimes any text.
#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Any(String),
}

const NAMES: &[&str] = &[
    "per-user",
    "login",
    "a",
    "b.c",
    "x_1",
    "GET",
    "post",
    "Head",
    "ip",
    "api_key",
    "header:x-user-id",
    "header:bad name",
];

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].to_owned(),
            Name::Any(text) => text.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Key {
    /// A digest in lower, upper or mixed case.
    Digest([u8; 32], u8),
    Any(String),
}

impl Key {
    fn text(&self) -> String {
        match self {
            Key::Digest(bytes, case) => {
                let mut hex = String::new();
                for (i, b) in bytes.iter().enumerate() {
                    match (case % 3, i % 2) {
                        (0, _) | (2, 0) => write!(hex, "{b:02x}").unwrap(),
                        _ => write!(hex, "{b:02X}").unwrap(),
                    }
                }
                hex
            }
            Key::Any(text) => text.clone(),
        }
    }
}

/// A count: mostly small, as rules files have them, sometimes anything up to u64::MAX.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Number {
    Small(u8),
    Any(u64),
}

impl Number {
    fn get(self) -> u64 {
        match self {
            Number::Small(n) => n.into(),
            Number::Any(n) => n,
        }
    }
}

/// A duration as a rules file spells it: an amount and a unit humantime knows, or any text.
#[derive(Debug, Arbitrary)]
enum Span {
    Amount(Number, u8),
    /// Within 65,535 ns of the longest duration that fits in u64 nanoseconds, where arithmetic
    /// on it overflows; the fuzzer would rarely land that close by itself.
    NearMax(u16),
    Any(String),
}

const UNITS: &[&str] = &[
    "ns", "us", "ms", "s", "m", "h", "d", "w", "M", "y", "min", "sec", "days",
];

impl Span {
    fn text(&self) -> String {
        match self {
            Span::Amount(amount, unit) => {
                let amount = amount.get();
                format!("{amount}{}", UNITS[usize::from(*unit) % UNITS.len()])
            }
            Span::NearMax(below) => format!("{}ns", u64::MAX - u64::from(*below)),
            Span::Any(text) => text.clone(),
        }
    }
}

impl AlgorithmSpec {
    fn text(&self) -> String {
        match self {
            AlgorithmSpec::TokenBucket => "token_bucket".into(),
            AlgorithmSpec::LeakyBucket => "leaky_bucket".into(),
            AlgorithmSpec::FixedWindow => "fixed_window".into(),
            AlgorithmSpec::SlidingLog => "sliding_log".into(),
            AlgorithmSpec::SlidingCounter => "sliding_counter".into(),
            AlgorithmSpec::Other(text) => text.clone(),
        }
    }
}

/// One field of a rule, for either format.
enum Value {
    Number(u64),
    Bool(bool),
    Text(String),
}

impl RuleSpec {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = vec![("algorithm", Value::Text(self.algorithm.text()))];
        let numbers = [
            ("rate", self.rate),
            ("burst", self.burst),
            ("capacity", self.capacity),
            ("limit", self.limit),
        ];
        for (key, number) in numbers {
            fields.extend(number.map(|n| (key, Value::Number(n.get()))));
        }
        for (key, span) in [
            ("per", &self.per),
            ("window", &self.window),
            ("timeout", &self.timeout),
        ] {
            fields.extend(span.as_ref().map(|s| (key, Value::Text(s.text()))));
        }
        fields.extend(self.shadow.map(|s| ("shadow", Value::Bool(s))));
        if let Some(mode) = &self.on_failure {
            let mode = match mode {
                FailSpec::Open => "open".to_owned(),
                FailSpec::Closed => "closed".to_owned(),
                FailSpec::Other(text) => text.clone(),
            };
            fields.push(("on_failure", Value::Text(mode)));
        }
        fields
    }
}

impl MatcherSpec {
    /// `{ path_prefix = "/", methods = ["GET"], client = "ip" }`, with `=` or `:`.
    fn inline(&self, assign: &str) -> String {
        let mut members = Vec::new();
        if let Some(prefix) = &self.path_prefix {
            members.push(format!("path_prefix {assign} {}", quote(prefix)));
        }
        let methods: Vec<String> = self.methods.iter().map(|m| quote(&m.text())).collect();
        members.push(format!("methods {assign} [{}]", methods.join(", ")));
        members.push(format!("client {assign} {}", quote(&self.client.text())));
        format!("{{ {} }}", members.join(", "))
    }
}

impl Spec {
    fn toml(&self) -> String {
        let mut out = String::from("[rules]\n");
        for rule in &self.rules {
            writeln!(out, "\n[rules.{}]", quote(&rule.name.text())).unwrap();
            for (key, value) in rule.fields() {
                writeln!(out, "{key} = {}", value.render()).unwrap();
            }
            if let Some(matcher) = &rule.matcher {
                writeln!(out, "match = {}", matcher.inline("=")).unwrap();
            }
        }
        for caller in &self.callers {
            writeln!(out, "\n[callers.{}]", quote(&caller.name.text())).unwrap();
            writeln!(out, "key_sha256 = {}", quote(&caller.key.text())).unwrap();
            let rules: Vec<String> = caller.rules.iter().map(|r| quote(&r.text())).collect();
            writeln!(out, "rules = [{}]", rules.join(", ")).unwrap();
        }
        out
    }

    fn yaml(&self) -> String {
        let mut out = String::from("rules:");
        if self.rules.is_empty() {
            out.push_str(" {}");
        }
        out.push('\n');
        for rule in &self.rules {
            writeln!(out, "  {}:", quote(&rule.name.text())).unwrap();
            for (key, value) in rule.fields() {
                writeln!(out, "    {key}: {}", value.render()).unwrap();
            }
            if let Some(matcher) = &rule.matcher {
                writeln!(out, "    match: {}", matcher.inline(":")).unwrap();
            }
        }
        if !self.callers.is_empty() {
            out.push_str("callers:\n");
        }
        for caller in &self.callers {
            writeln!(out, "  {}:", quote(&caller.name.text())).unwrap();
            writeln!(out, "    key_sha256: {}", quote(&caller.key.text())).unwrap();
            let rules: Vec<String> = caller.rules.iter().map(|r| quote(&r.text())).collect();
            writeln!(out, "    rules: [{}]", rules.join(", ")).unwrap();
        }
        out
    }

    fn has_long_key(&self) -> bool {
        let names = self.rules.iter().map(|r| &r.name);
        names
            .chain(self.callers.iter().map(|c| &c.name))
            .any(|name| quote(&name.text()).len() > 1000)
    }

    fn has_number_above_i64(&self) -> bool {
        self.rules.iter().any(|r| {
            [r.rate, r.burst, r.capacity, r.limit]
                .into_iter()
                .flatten()
                .any(|n| n.get() > i64::MAX as u64)
        })
    }
}

impl Value {
    /// The same in TOML and YAML: a decimal, `true`/`false`, or a double-quoted string.
    fn render(&self) -> String {
        match self {
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Text(text) => quote(text),
        }
    }
}

/// `text` as a double-quoted string that TOML and YAML both read back as `text`: printable ASCII
/// as is, everything else as a `\u` or `\U` escape, which the two spell alike.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => write!(out, "\\u{:04X}", u32::from(c)).unwrap(),
            c => write!(out, "\\U{:08X}", u32::from(c)).unwrap(),
        }
    }
    out.push('"');
    out
}
