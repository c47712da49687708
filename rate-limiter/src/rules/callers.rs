//! Who may ask the decision API, and about which rules.
//!
//! A caller holds an API key (`sk_` and 40 hex digits, as every sdlab system issues them). The
//! rules file names each caller by the SHA-256 of its key, never the key, and lists the rules it
//! may check:
//!
//! ```toml
//! [callers.checkout]
//! key_sha256 = "9f86d0…"            # printf %s "$KEY" | sha256sum
//! rules = ["per-user", "login"]
//! ```
//!
//! `RATE_LIMITER_CALLER_KEY` adds one more caller, the operator's, granted every rule of the
//! decision API (the lab and the load tests use it).
//!
//! The gateway's rules (those with a `match`) belong to the gateway: no caller is granted one,
//! so no request to the API can spend a budget the gateway counts: otherwise a caller could ask
//! for `gateway-ip` with another client's address as the key and lock that client out.
//! A caller granted a rule can spend any key's budget under it: the key is the caller's own
//! naming of its clients, and two instances of one service sharing a budget is the point.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use platform::auth::ApiKey;

use super::{Rule, RuleName};

/// A caller as the rules file grants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    /// The SHA-256 of the caller's key, lower-case hex ([`ApiKey::hash`]).
    pub key_sha256: String,
    pub rules: Vec<RuleName>,
}

/// Every caller, found by its key's SHA-256: one digest and one map lookup per request. The
/// digest is kept as bytes, not hex: the decision API's cost is measured per microsecond
/// (`DESIGN.md` §11).
#[derive(Debug, Default)]
pub struct Callers {
    by_digest: HashMap<[u8; 32], Arc<Caller>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    rules: BTreeSet<RuleName>,
}

impl Caller {
    pub fn may_check(&self, rule: &RuleName) -> bool {
        self.rules.contains(rule)
    }

    /// The rules this caller may check, by name.
    pub fn rules(&self) -> impl Iterator<Item = &RuleName> {
        self.rules.iter()
    }
}

impl Callers {
    /// The callers of `grants` (already checked against `rules` by the file's parser, hashes
    /// included), and the operator's `key` if given, granted every rule without a `match`.
    pub fn new(grants: Vec<Grant>, operator: Option<&ApiKey>, rules: &[Rule]) -> Self {
        let mut by_digest: HashMap<[u8; 32], Arc<Caller>> = grants
            .into_iter()
            .map(|grant| {
                let mut digest = [0; 32];
                hex::decode_to_slice(&grant.key_sha256, &mut digest)
                    .expect("the rules file checks that a key hash is 64 hex digits");
                let caller = Caller {
                    name: grant.name,
                    rules: grant.rules.into_iter().collect(),
                };
                (digest, Arc::new(caller))
            })
            .collect();
        if let Some(key) = operator {
            let decision_rules = rules
                .iter()
                .filter(|rule| rule.matcher.is_none())
                .map(|rule| rule.name.clone())
                .collect();
            let caller = Caller {
                name: "operator".into(),
                rules: decision_rules,
            };
            by_digest.insert(key.digest(), Arc::new(caller));
        }
        Self { by_digest }
    }

    /// The caller holding `key`, if any.
    pub fn authenticate(&self, key: &ApiKey) -> Option<Arc<Caller>> {
        self.by_digest.get(&key.digest()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        algorithm::{Algorithm, FixedWindow},
        rules::{ClientSource, Matcher},
    };

    fn rule(name: &str, gateway: bool) -> Rule {
        let mut rule = Rule::new(
            RuleName::parse(name).unwrap(),
            Algorithm::FixedWindow(FixedWindow::new(5, Duration::from_secs(1)).unwrap()),
        );
        if gateway {
            rule.matcher = Some(Matcher {
                path_prefix: "/".into(),
                methods: Vec::new(),
                client: ClientSource::Ip,
            });
        }
        rule
    }

    #[test]
    fn a_caller_may_check_the_rules_it_is_granted_and_no_other() {
        let key = ApiKey::generate();
        let grants = vec![Grant {
            name: "checkout".into(),
            key_sha256: key.hash(),
            rules: vec![RuleName::parse("login").unwrap()],
        }];
        let callers = Callers::new(
            grants,
            None,
            &[rule("login", false), rule("per-user", false)],
        );

        let caller = callers.authenticate(&key).unwrap();

        assert_eq!(caller.name, "checkout");
        assert!(caller.may_check(&RuleName::parse("login").unwrap()));
        assert!(!caller.may_check(&RuleName::parse("per-user").unwrap()));
        assert!(callers.authenticate(&ApiKey::generate()).is_none());
    }

    #[test]
    fn the_operator_may_check_every_rule_but_the_gateways() {
        let key = ApiKey::generate();
        let rules = [rule("per-user", false), rule("gateway-ip", true)];

        let callers = Callers::new(Vec::new(), Some(&key), &rules);

        let operator = callers.authenticate(&key).unwrap();
        let granted: Vec<&str> = operator.rules().map(RuleName::as_str).collect();
        assert_eq!(granted, ["per-user"]);
    }
}
