//! The rules: which requests a rule matches, and reading the rules file in either format.

use std::{path::Path, time::Duration};

use axum::http::Method;

use super::*;

fn toml(text: &str) -> Result<Vec<Rule>, FileError> {
    parse(text, Format::Toml, "rules.toml").map(|file| file.rules)
}

fn yaml(text: &str) -> Result<Vec<Rule>, FileError> {
    parse(text, Format::Yaml, "rules.yaml").map(|file| file.rules)
}

fn matcher(prefix: &str, methods: &[Method]) -> Matcher {
    Matcher {
        path_prefix: prefix.into(),
        methods: methods.to_vec(),
        client: ClientSource::Ip,
    }
}

#[test]
fn a_prefix_matches_whole_segments() {
    let login = matcher("/login", &[]);
    assert!(login.matches(&Method::POST, "/login"));
    assert!(login.matches(&Method::POST, "/login/2fa"));
    assert!(!login.matches(&Method::POST, "/login-help"));
    assert!(!login.matches(&Method::POST, "/"));

    let api = matcher("/api/", &[]);
    assert!(api.matches(&Method::GET, "/api/links"));
    assert!(!api.matches(&Method::GET, "/api"));
}

#[test]
fn a_rule_on_get_also_covers_head() {
    let reads = matcher("/", &[Method::GET]);
    assert!(reads.matches(&Method::HEAD, "/x"));
    assert!(!reads.matches(&Method::POST, "/x"));
    assert!(!matcher("/", &[Method::POST]).matches(&Method::HEAD, "/x"));
}

#[test]
fn the_shipped_rules_parse() {
    let rules = toml(DEFAULT_RULES).unwrap();
    assert!(rules.len() >= 5);
    let login = rules.iter().find(|r| r.name.as_str() == "login").unwrap();
    assert_eq!(login.failure.mode, FailMode::Closed);
    assert_eq!(login.failure.timeout, Duration::from_millis(100));
}

#[test]
fn toml_and_yaml_describe_the_same_rules() {
    let from_toml = toml(
        r#"
[rules.api]
algorithm = "sliding_log"
limit = 5
window = "1m"
shadow = true
match = { path_prefix = "/api/", methods = ["post"], client = "header:x-user-id" }
"#,
    )
    .unwrap();
    let from_yaml = yaml(
        r#"
rules:
  api:
    algorithm: sliding_log
    limit: 5
    window: 1m
    shadow: true
    match: { path_prefix: /api/, methods: [post], client: "header:x-user-id" }
"#,
    )
    .unwrap();
    assert_eq!(format!("{from_toml:?}"), format!("{from_yaml:?}"));
    let matcher = from_toml[0].matcher.as_ref().unwrap();
    assert!(matcher.matches(&Method::POST, "/api/things"));
    assert!(!matcher.matches(&Method::GET, "/api/things"));
}

#[test]
fn a_misspelt_field_is_reported_with_its_line_and_column() {
    let err = toml("[rules.a]\nalgorithm = \"token_bucket\"\nrate = 1\nper = \"1s\"\nburts = 5\n")
        .unwrap_err();
    assert_eq!((err.line, err.column), (Some(5), Some(1)), "{err}");
    assert!(err.message.contains("unknown field `burts`"), "{err}");
    assert!(err.to_string().starts_with("rules.toml:5:1: "), "{err}");

    let err = yaml("rules:\n  a:\n    algorithm: token_bucket\n    burts: 5\n").unwrap_err();
    assert_eq!(err.line, Some(4), "{err}");
    assert!(err.message.contains("unknown field `burts`"), "{err}");
}

#[test]
fn a_missing_parameter_names_what_the_algorithm_needs() {
    let err =
        toml("[rules.a]\nalgorithm = \"token_bucket\"\nrate = 1\nper = \"1s\"\n").unwrap_err();
    assert!(
        err.message
            .contains("token_bucket needs `rate`, `per` and `burst`; `burst` is missing"),
        "{err}"
    );
    assert!(err.line.is_some(), "{err}");
}

#[test]
fn a_parameter_of_another_algorithm_is_refused() {
    let err =
        toml("[rules.a]\nalgorithm = \"fixed_window\"\nlimit = 1\nwindow = \"1s\"\nburst = 3\n")
            .unwrap_err();
    assert!(
        err.message
            .contains("`burst` does not apply to fixed_window"),
        "{err}"
    );
}

#[test]
fn bad_values_are_refused_with_a_reason() {
    for (text, expected) in [
        (
            "[rules.a]\nalgorithm = \"fixed_window\"\nlimit = 1\nwindow = \"soon\"\n",
            "`soon` is not a duration",
        ),
        (
            "[rules.a]\nalgorithm = \"fixed_window\"\nlimit = 0\nwindow = \"1s\"\n",
            "the limit must be at least 1",
        ),
        (
            "[rules.a]\nalgorithm = \"fixed_window\"\nlimit = -1\nwindow = \"1s\"\n",
            "invalid value",
        ),
        (
            "[rules.a]\nalgorithm = \"cleverest\"\nlimit = 1\nwindow = \"1s\"\n",
            "unknown variant `cleverest`",
        ),
        (
            "[rules.\"no spaces\"]\nalgorithm = \"fixed_window\"\nlimit = 1\nwindow = \"1s\"\n",
            "is not a rule name",
        ),
        (
            "[rules.a]\nalgorithm = \"fixed_window\"\nlimit = 1\nwindow = \"1s\"\non_failure = \"sometimes\"\n",
            "unknown variant `sometimes`",
        ),
        (
            "[rules.a]\nalgorithm = \"fixed_window\"\nlimit = 1\nwindow = \"1s\"\nmatch = { client = \"cookie\" }\n",
            "`client` is `ip`, `api_key` or `header:<name>`",
        ),
        ("rules = {}\n", "define at least one rule"),
        (
            "[rules.a]\nalgorithm = \"fixed_window\"\nlimit = 1\nwindow = \"1s\"\ntimeout = \"2s\"\n",
            "`timeout` must be between 1ms and 1s",
        ),
        (
            "[rules.a]\nalgorithm = \"fixed_window\"\nlimit = 1\nwindow = \"1s\"\ntimeout = \"1us\"\n",
            "`timeout` must be between 1ms and 1s",
        ),
        (
            "[rules.a]\nalgorithm = \"leaky_bucket\"\nrate = 1\nper = \"1s\"\ncapacity = 60\nmatch = { client = \"ip\" }\n",
            "capacity × interval must be at most 10s",
        ),
        ("[rules.a\n", ""),
    ] {
        let err = toml(text).unwrap_err();
        assert!(err.message.contains(expected), "{text:?}: {err}");
    }
}

#[test]
fn a_rule_defined_twice_is_an_error_in_either_format() {
    let rule = "algorithm = \"fixed_window\"\nlimit = 1\nwindow = \"1s\"\n";
    let err = toml(&format!("[rules.a]\n{rule}[rules.a]\n{rule}")).unwrap_err();
    assert_eq!(err.line, Some(5), "{err}");

    let err = yaml(
        "rules:\n  a: {algorithm: fixed_window, limit: 1, window: 1s}\n  a: {algorithm: fixed_window, limit: 2, window: 1s}\n",
    )
    .unwrap_err();
    assert!(
        err.message.contains("the rule `a` is defined twice"),
        "{err}"
    );
    // The YAML parser places errors raised while reading a mapping at the mapping's first key.
    assert_eq!(err.line, Some(2), "{err}");
}

#[test]
fn a_file_of_another_format_is_refused_before_reading() {
    let err = load(Path::new("rules.json")).unwrap_err();
    assert!(err.message.contains(".toml, .yaml or .yml"), "{err}");
}

fn callers(text: &str) -> Result<Vec<super::Grant>, FileError> {
    parse(text, Format::Toml, "rules.toml").map(|file| file.callers)
}

const TWO_RULES: &str = r#"
[rules.login]
algorithm = "sliding_log"
limit = 5
window = "1m"

[rules.gateway-ip]
algorithm = "fixed_window"
limit = 5
window = "1s"
match = { path_prefix = "/", client = "ip" }
"#;

#[test]
fn a_caller_is_read_with_its_key_hash_and_its_rules() {
    let hash = "ab".repeat(32);
    let text =
        format!("{TWO_RULES}\n[callers.checkout]\nkey_sha256 = \"{hash}\"\nrules = [\"login\"]\n");

    let [grant] = callers(&text).unwrap().try_into().unwrap();

    assert_eq!(grant.name, "checkout");
    assert_eq!(grant.key_sha256, hash);
    assert_eq!(grant.rules, [RuleName::parse("login").unwrap()]);
}

#[test]
fn a_caller_may_not_be_granted_the_gateways_rules_an_unknown_rule_or_another_callers_key() {
    let hash = "ab".repeat(32);
    let grant = |name: &str, hash: &str, rules: &str| {
        format!("[callers.{name}]\nkey_sha256 = \"{hash}\"\nrules = [{rules}]\n")
    };
    let cases = [
        (grant("a", &hash, "\"gateway-ip\""), "gateway"),
        (grant("a", &hash, "\"nope\""), "no rule is named `nope`"),
        (grant("a", "sk_not_a_hash", "\"login\""), "64 hex digits"),
        (
            grant("a", &hash, "\"login\"") + &grant("b", &hash, "\"login\""),
            "another caller's",
        ),
    ];
    for (callers_text, expected) in cases {
        let err = callers(&format!("{TWO_RULES}\n{callers_text}")).unwrap_err();
        assert!(
            err.message.contains(expected),
            "{err} should say {expected:?}"
        );
    }
}

#[test]
fn a_caller_defined_twice_is_an_error_in_either_format() {
    let (first, second) = ("ab".repeat(32), "cd".repeat(32));
    let grant = |key: &str| format!("[callers.checkout]\nkey_sha256 = \"{key}\"\nrules = []\n");
    let err = callers(&format!("{TWO_RULES}\n{}{}", grant(&first), grant(&second))).unwrap_err();
    assert_eq!(err.line, Some(16), "{err}");

    // A YAML mapping keeps the last of two equal keys unless told otherwise: the first key
    // would be dropped without a word.
    let yaml = format!(
        "rules:\n  login: {{algorithm: fixed_window, limit: 1, window: 1s}}\ncallers:\n  \
         checkout: {{key_sha256: \"{first}\", rules: []}}\n  \
         checkout: {{key_sha256: \"{second}\", rules: []}}\n"
    );
    let err = parse(&yaml, Format::Yaml, "rules.yaml").unwrap_err();
    assert!(
        err.message
            .contains("the caller `checkout` is defined twice"),
        "{err}"
    );
}
