//! The limiter: rules, a store, the failure policy and the local cache of keys over their limit.
//!
//! [`Limiter::check`] is the one entry point the decision API, the gateway and the tower layer
//! share. For a request that several rules apply to, it asks the store once, for all of them, and
//! the store spends only if no enforced rule rejects (all-or-nothing).
//!
//! Around the store:
//! - **Costs beyond capacity** are refused before the store is asked: no amount of waiting admits
//!   them, so the caller gets a permanent error rather than a retry time.
//! - **The over-limit cache.** With a remote store, a key that was rejected is remembered in
//!   process until its retry time, and its next requests are rejected without a Redis round trip
//!   (envoyproxy/ratelimit's "local cache"). This is exact, not an approximation: capacity
//!   cannot return before the retry time, since other instances can only spend more. Only
//!   rejections of one unit are remembered, because a cheaper request could pass sooner than a
//!   costlier one.
//! - **The failure policy.** The store call is bounded by the smallest timeout among the rules
//!   that apply (when it can stall at all: see [`Store::may_stall`]); if it errs or times out,
//!   the failure is counted in `ratelimit_store_errors_total{kind}` (`timeout`, or the error's
//!   [`StoreError::kind`](crate::store::StoreError::kind)), and a request with any enforced
//!   fail-closed rule is refused (503) and counted as `failed_closed`, any other is admitted and
//!   counted as `failed_open`.

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::Duration,
};

use lru::LruCache;
use metrics::Counter;
use tokio::time::Instant;

use crate::{
    algorithm::Status,
    rules::{ClientKey, FailMode, Rule, RuleName},
    store::{Check, Decision, Store},
};

pub struct Limiter {
    rules: HashMap<RuleName, Arc<Rule>>,
    store: Arc<dyn Store>,
    over_limit: Option<Mutex<LruCache<(RuleName, String), Blocked>>>,
    counters: HashMap<RuleName, Counters>,
}

/// A key known to be over its limit until `retry_at`.
#[derive(Debug, Clone, Copy)]
struct Blocked {
    retry_at: Instant,
    reset_at: Instant,
}

/// What one rule said about a request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rule: Arc<Rule>,
    /// `None` when the store failed and the rule failed open: nothing is known.
    pub decision: Option<Decision>,
}

/// The answer for a whole request.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Whether the request goes ahead: no enforced rule rejected it.
    pub allowed: bool,
    /// One per rule that was asked, in the order asked. When the over-limit cache answers, only
    /// the rule that rejected is here.
    pub outcomes: Vec<Outcome>,
}

impl Verdict {
    /// For a rejection, the time until every rejecting rule would admit the request.
    pub fn retry_after(&self) -> Duration {
        self.enforced_decisions()
            .filter(|decision| !decision.allowed)
            .map(|decision| decision.retry_after)
            .max()
            .unwrap_or_default()
    }

    /// How long to hold an admitted request (leaky bucket rules).
    pub fn delay(&self) -> Duration {
        self.enforced_decisions()
            .map(|decision| decision.delay)
            .max()
            .unwrap_or_default()
    }

    fn enforced_decisions(&self) -> impl Iterator<Item = &Decision> {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.rule.enforced())
            .filter_map(|outcome| outcome.decision.as_ref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("no rule is named `{0}`")]
    UnknownRule(String),
    #[error("a cost of {cost} can never be admitted by `{rule}`, whose capacity is {capacity}")]
    CostExceedsCapacity {
        rule: RuleName,
        cost: u64,
        capacity: u64,
    },
    #[error("the limiter's store is unavailable and `{0}` fails closed")]
    Unavailable(RuleName),
}

/// Outcome counters of one rule, taken once: `ratelimit_decisions_total{rule, algorithm,
/// outcome}`. The algorithm is the rule's own, so the label adds no series; it is there so that a
/// chart can sum decisions by algorithm.
struct Counters {
    allowed: Counter,
    rejected: Counter,
    rejected_locally: Counter,
    shadow_rejected: Counter,
    failed_open: Counter,
    failed_closed: Counter,
}

impl Counters {
    fn new(rule: &Rule) -> Self {
        let counter = |outcome: &'static str| {
            metrics::counter!(
                "ratelimit_decisions_total",
                "rule" => rule.name.to_string(),
                "algorithm" => rule.algorithm.name(),
                "outcome" => outcome
            )
        };
        Self {
            allowed: counter("allowed"),
            rejected: counter("rejected"),
            rejected_locally: counter("rejected_locally"),
            shadow_rejected: counter("shadow_rejected"),
            failed_open: counter("failed_open"),
            failed_closed: counter("failed_closed"),
        }
    }
}

impl Limiter {
    /// `over_limit_entries`: how many over-limit keys to remember per instance (used only with
    /// a remote store).
    pub fn new(rules: Vec<Rule>, store: Arc<dyn Store>, over_limit_entries: usize) -> Self {
        // The counters below are taken once; taken before a recorder exists, they would record
        // nothing.
        platform::metrics::install();
        let over_limit = NonZeroUsize::new(over_limit_entries)
            .filter(|_| store.is_remote())
            .map(|entries| Mutex::new(LruCache::new(entries)));
        let counters = rules
            .iter()
            .map(|rule| (rule.name.clone(), Counters::new(rule)))
            .collect();
        Self {
            rules: rules
                .into_iter()
                .map(|rule| (rule.name.clone(), Arc::new(rule)))
                .collect(),
            store,
            over_limit,
            counters,
        }
    }

    pub fn rule(&self, name: &str) -> Result<&Arc<Rule>, LimitError> {
        self.rules
            .get(name)
            .ok_or_else(|| LimitError::UnknownRule(name.to_owned()))
    }

    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.rules.values()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Decides a request that `requests` (rule, client) apply to, spending `cost` units of each
    /// if every enforced rule admits it; a cost of 0 asks without spending.
    pub async fn check(
        &self,
        requests: &[(Arc<Rule>, ClientKey)],
        cost: u64,
    ) -> Result<Verdict, LimitError> {
        // A cost no wait can admit is a permanent error for an enforced rule. A rule in shadow
        // mode never rejects, so there it is recorded as a shadow rejection instead: the rule
        // only peeks, and its decision is marked rejected below.
        for (rule, _) in requests.iter().filter(|(rule, _)| rule.enforced()) {
            let capacity = rule.algorithm.capacity();
            if cost > capacity {
                return Err(LimitError::CostExceedsCapacity {
                    rule: rule.name.clone(),
                    cost,
                    capacity,
                });
            }
        }
        let beyond = |rule: &Rule| cost > rule.algorithm.capacity();
        if let Some(verdict) = self.known_over_limit(requests) {
            return Ok(verdict);
        }

        let checks: Vec<Check<'_>> = requests
            .iter()
            .map(|(rule, key)| Check {
                rule: rule.name.as_str(),
                algorithm: &rule.algorithm,
                key: key.as_str(),
                units: if beyond(rule) { 0 } else { cost },
                enforced: rule.enforced(),
            })
            .collect();
        let timeout = requests
            .iter()
            .map(|(rule, _)| rule.failure.timeout)
            .min()
            .unwrap_or(Duration::MAX);
        // Read only when there is an over-limit cache to time entries by: not on the in-process path.
        let asked_at = self.over_limit.as_ref().map(|_| Instant::now());
        let answer = if self.store.may_stall() {
            tokio::time::timeout(timeout, self.store.decide(&checks)).await
        } else {
            // An in-process decision cannot hang, and a timer per decision is not free.
            Ok(self.store.decide(&checks).await)
        };
        let decided = match answer {
            Ok(Ok(decisions)) => decisions,
            Ok(Err(err)) => return self.fail(requests, err.kind(), &err),
            Err(_elapsed) => {
                let cause = format!("no answer within {timeout:?}");
                return self.fail(requests, "timeout", &cause);
            }
        };

        let outcomes: Vec<Outcome> = requests
            .iter()
            .zip(decided)
            .map(|((rule, _), mut decision)| {
                if beyond(rule) {
                    decision.allowed = false;
                }
                Outcome {
                    rule: rule.clone(),
                    decision: Some(decision),
                }
            })
            .collect();
        let allowed = outcomes
            .iter()
            .all(|outcome| !outcome.rule.enforced() || is_allowed(outcome));
        for ((rule, key), outcome) in requests.iter().zip(&outcomes) {
            let counters = &self.counters[&rule.name];
            match (rule.enforced(), is_allowed(outcome)) {
                (_, true) => counters.allowed.increment(1),
                (false, false) => counters.shadow_rejected.increment(1),
                (true, false) => {
                    counters.rejected.increment(1);
                    self.remember_over_limit(rule, key, outcome, cost, asked_at);
                }
            }
        }
        Ok(Verdict { allowed, outcomes })
    }

    /// A rejection from the over-limit cache, if any enforced rule's key is in it.
    fn known_over_limit(&self, requests: &[(Arc<Rule>, ClientKey)]) -> Option<Verdict> {
        let cache = self.over_limit.as_ref()?;
        let now = Instant::now();
        let mut cache = cache.lock().expect("never poisoned");
        for (rule, key) in requests.iter().filter(|(rule, _)| rule.enforced()) {
            let cache_key = (rule.name.clone(), key.as_str().to_owned());
            match cache.get(&cache_key) {
                Some(blocked) if blocked.retry_at > now => {
                    self.counters[&rule.name].rejected_locally.increment(1);
                    let decision = Decision {
                        allowed: false,
                        status: Status {
                            remaining: 0,
                            reset_after: blocked.reset_at - now,
                        },
                        retry_after: blocked.retry_at - now,
                        delay: Duration::ZERO,
                    };
                    return Some(Verdict {
                        allowed: false,
                        outcomes: vec![Outcome {
                            rule: rule.clone(),
                            decision: Some(decision),
                        }],
                    });
                }
                Some(_) => {
                    cache.pop(&cache_key);
                }
                None => {}
            }
        }
        None
    }

    fn remember_over_limit(
        &self,
        rule: &Rule,
        key: &ClientKey,
        outcome: &Outcome,
        cost: u64,
        asked_at: Option<Instant>,
    ) {
        let (Some(cache), Some(decision), Some(asked_at)) =
            (&self.over_limit, outcome.decision, asked_at)
        else {
            return;
        };
        if cost > 1 {
            return;
        }
        // Timed from when the question was sent, not when the answer came back: the store read
        // its clock in between, so the entry expires no later than the store would admit the key
        // again, and the cache never rejects what the store would have admitted. (Other
        // instances can only spend more, which only moves that moment later.)
        let blocked = Blocked {
            retry_at: asked_at + decision.retry_after,
            reset_at: asked_at + decision.status.reset_after,
        };
        cache
            .lock()
            .expect("never poisoned")
            .put((rule.name.clone(), key.as_str().to_owned()), blocked);
    }

    fn fail(
        &self,
        requests: &[(Arc<Rule>, ClientKey)],
        kind: &'static str,
        cause: &dyn std::fmt::Display,
    ) -> Result<Verdict, LimitError> {
        tracing::warn!(error = %cause, "the rate-limit store failed; applying failure policies");
        metrics::counter!("ratelimit_store_errors_total", "kind" => kind).increment(1);
        let closed = requests
            .iter()
            .find(|(rule, _)| rule.enforced() && rule.failure.mode == FailMode::Closed);
        if let Some((rule, _)) = closed {
            for (rule, _) in requests {
                self.counters[&rule.name].failed_closed.increment(1);
            }
            return Err(LimitError::Unavailable(rule.name.clone()));
        }
        for (rule, _) in requests {
            self.counters[&rule.name].failed_open.increment(1);
        }
        Ok(Verdict {
            allowed: true,
            outcomes: requests
                .iter()
                .map(|(rule, _)| Outcome {
                    rule: rule.clone(),
                    decision: None,
                })
                .collect(),
        })
    }
}

fn is_allowed(outcome: &Outcome) -> bool {
    outcome.decision.is_none_or(|decision| decision.allowed)
}
