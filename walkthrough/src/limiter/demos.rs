//! The rate limiter's deep-dive claims, shown happening against limiters started for the
//! walkthrough, through the decision API (`POST /api/v1/check`), with the answers' own numbers and
//! `/metrics` (`ratelimit_decisions_total{rule, algorithm, outcome}`) as the witnesses.
//!
//! The limiter decides on its clock, the client only sees when it sent and when it was answered;
//! so no check here assumes how fast this machine is. A count is checked against what the rule
//! allows in the span the requests were actually in flight ([`Bucket`]), and where a request fell
//! in a window is read from the fixed window's own `reset_after_ms`.

use std::{
    hash::{BuildHasher, RandomState},
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context;
use async_trait::async_trait;
use platform::auth::{AdminToken, ApiKey};
use serde_json::{Value, json};

use super::bounds::Bucket;
use crate::stage::{self, Servers, Shown, Stage};

/// The demonstrations, by the ids WALKTHROUGH.toml's claims name.
pub const DEMOS: &[&str] = &[
    "burst-then-refill",
    "boundary-burst",
    "three-instances",
    "redis-down",
];

/// The walkthrough's own rules, read after the built-in ones (`rate-limiter/rules.toml`, whose
/// `login` and `per-user` the failure demonstration uses as the lab's page does): `per-user`'s
/// bucket, one-second windows, so that a boundary comes within a second, and a quota that no
/// refill touches while three instances share it (50 per ten minutes: a token every 12 s).
///
/// Each waits the longest a rule may for its store, and fails closed: a decision that takes
/// longer on a busy machine is then a 503, never an admission the count would mistake for the
/// limit's (and the demonstration tries again with a new key).
const RULES: &str = r#"
# The walkthrough's rules (walkthrough/src/limiter/demos.rs).
[rules.walkthrough-bucket]
algorithm = "token_bucket"
rate = 10
per = "1s"
burst = 20
on_failure = "closed"
timeout = "1s"

[rules.walkthrough-fixed]
algorithm = "fixed_window"
limit = 10
window = "1s"
on_failure = "closed"
timeout = "1s"

[rules.walkthrough-sliding]
algorithm = "sliding_counter"
limit = 10
window = "1s"
on_failure = "closed"
timeout = "1s"

[rules.walkthrough-shared]
algorithm = "token_bucket"
rate = 50
per = "10m"
burst = 50
on_failure = "closed"
timeout = "1s"
"#;

/// The token bucket the burst is shown on: `per-user`'s numbers.
const BUCKET: &str = "walkthrough-bucket";

/// How many times a demonstration whose requests were not all decided in time tries again.
const ATTEMPTS: u32 = 3;

/// The built-in rules of each failure policy: `login` refuses when its store cannot answer,
/// `per-user` admits.
const FAILS_CLOSED: &str = "login";
const FAILS_OPEN: &str = "per-user";

/// Limiters started for the walkthrough: the one the walkthrough shows, and the two more that
/// `three-instances` starts beside it.
pub struct Live {
    servers: Servers,
    settings: rate_limiter::Settings,
    url: String,
    backends: String,
    /// The operator's key: it may check every rule of the decision API.
    key: String,
    admin: AdminToken,
    /// Keys of this run's clients start with it, so runs sharing one Redis never meet.
    run: String,
    others: Vec<String>,
    client: reqwest::Client,
    /// Holds the rules file.
    _rules: tempfile::TempDir,
}

/// One answer of `POST /api/v1/check`, and when it arrived.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
    ratelimit: Option<String>,
    received: Instant,
}

impl Answer {
    /// Admitted by the store's decision (not by a failure policy).
    fn allowed(&self) -> bool {
        self.status == 200 && self.body["allowed"] == true && !self.failed_open()
    }

    fn failed_open(&self) -> bool {
        self.body["failed_open"] == true
    }

    /// Decided by the store: admitted or refused, not answered by a failure policy.
    fn decided(&self) -> bool {
        self.allowed() || self.status == 429
    }

    /// A number of the body (a count, or milliseconds); 0 if absent.
    fn number(&self, field: &str) -> u64 {
        self.body[field].as_u64().unwrap_or(0)
    }
}

/// Requests sent at once, from `from` until the last answer at `to` (since the demonstration's
/// start).
struct Round {
    from: Duration,
    to: Duration,
    answers: Vec<Answer>,
}

impl Round {
    fn admitted(&self) -> u64 {
        self.answers.iter().filter(|a| a.allowed()).count() as u64
    }

    fn refused(&self) -> usize {
        self.answers.iter().filter(|a| a.status == 429).count()
    }

    /// Whether some answer was the rule's failure policy rather than the store's decision (the
    /// store took longer than the rule's timeout, on a busy machine), saying so: such a round's
    /// counts prove nothing, since a late decision may still have been spent.
    fn undecided(&self, shown: &mut Shown) -> bool {
        let undecided = self.answers.iter().filter(|a| !a.decided()).count();
        if undecided > 0 {
            shown.say(format!(
                "{undecided} of {} answers were the failure policy's, not decisions (the store \
                 was slower than the rule's timeout); again with a new key",
                self.answers.len()
            ));
        }
        undecided > 0
    }

    /// The span the requests were in flight, in whole milliseconds, rounded up.
    fn millis(&self) -> u64 {
        (self.to - self.from).as_micros().div_ceil(1000) as u64
    }
}

/// A rule as `GET /api/v1/rules` lists it.
struct RuleInfo {
    algorithm: String,
    limit: u64,
    window: Duration,
}

impl Live {
    /// The limiter as `RATE_LIMITER_*` and `REDIS_URL` configure it, on a free port, with the
    /// built-in rules and the walkthrough's, an operator's key and the fault switch open to an
    /// admin token of its own.
    pub async fn start() -> anyhow::Result<Self> {
        let mut servers = Servers::new()?;
        let rules = tempfile::Builder::new()
            .prefix("sdlab-walkthrough-rules-")
            .tempdir()
            .context("making a directory for the rules file")?;
        let path = rules.path().join("rules.toml");
        std::fs::write(
            &path,
            format!("{}{RULES}", rate_limiter::rules::DEFAULT_RULES),
        )
        .context("writing the rules file")?;
        let mut settings = rate_limiter::Settings::from_env()?;
        settings.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.rules_file = Some(path);
        settings.upstream = None;
        let key = settings
            .caller_key
            .get_or_insert_with(ApiKey::generate)
            .expose()
            .to_owned();
        let admin = AdminToken::generate();
        settings.admin_token = Some(admin.clone());
        let app = rate_limiter::Application::build(settings.clone()).await?;
        let (url, backends) = (
            format!("http://{}", app.local_addr()),
            app.describe_backends().to_owned(),
        );
        servers.spawn(app.run_until_stopped(servers.until()));
        Ok(Self {
            servers,
            settings,
            url,
            backends,
            key,
            admin,
            run: format!("{:08x}", RandomState::new().hash_one(0u8) as u32),
            others: Vec::new(),
            client: stage::client(),
            _rules: rules,
        })
    }

    fn redis(&self) -> bool {
        self.settings.redis_url.is_some()
    }

    /// A client key of this run's own.
    fn client_key(&self, name: &str) -> String {
        format!("walkthrough:{}:{name}", self.run)
    }

    /// `POST /api/v1/check` at the limiter of `url`.
    async fn check(&self, url: &str, rule: &str, key: &str, cost: u64) -> anyhow::Result<Answer> {
        let response = self
            .client
            .post(format!("{url}/api/v1/check"))
            .bearer_auth(&self.key)
            .json(&json!({"rule": rule, "key": key, "cost": cost}))
            .send()
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (retry_after, ratelimit) = (header("retry-after"), header("ratelimit"));
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok(Answer {
            status,
            body,
            retry_after,
            ratelimit,
            received: Instant::now(),
        })
    }

    /// `count` requests of one unit at once, the i-th to `urls[i % urls.len()]`.
    async fn round(
        &self,
        urls: &[&str],
        rule: &str,
        key: &str,
        count: u64,
        start: Instant,
    ) -> anyhow::Result<Round> {
        let from = start.elapsed();
        let requests = (0..count as usize).map(|i| self.check(urls[i % urls.len()], rule, key, 1));
        let answers = futures::future::try_join_all(requests).await?;
        Ok(Round {
            from,
            to: start.elapsed(),
            answers,
        })
    }

    /// A rule's algorithm and numbers, as the limiter lists them.
    async fn rule(&self, name: &str) -> anyhow::Result<RuleInfo> {
        let rules: Vec<Value> = self
            .client
            .get(format!("{}/api/v1/rules", self.url))
            .bearer_auth(&self.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let rule = rules
            .iter()
            .find(|rule| rule["name"] == name)
            .with_context(|| format!("GET /api/v1/rules lists no {name}"))?;
        Ok(RuleInfo {
            algorithm: rule["algorithm"].as_str().unwrap_or("").to_owned(),
            limit: rule["limit"].as_u64().context("a rule's limit")?,
            window: Duration::from_millis(rule["window_ms"].as_u64().context("a window")?),
        })
    }

    /// `ratelimit_decisions_total` of `rule` with `outcome`.
    async fn decisions(&self, rule: &str, outcome: &str) -> anyhow::Result<f64> {
        let series = format!("ratelimit_decisions_total{{rule=\"{rule}\",outcome=\"{outcome}\"}}");
        stage::metric(&self.client, &self.url, &series).await
    }

    /// `ratelimit_store_errors_total{kind="unreachable"}`: decisions the switch failed.
    async fn unreachable(&self) -> anyhow::Result<f64> {
        let series = "ratelimit_store_errors_total{kind=\"unreachable\"}";
        stage::metric(&self.client, &self.url, series).await
    }

    /// A token bucket's burst, then the tokens coming back at its rate, and never more than the
    /// burst however long it waits.
    async fn burst_then_refill(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let rule = self.rule(BUCKET).await?;
        let burst = rule.limit;
        let interval = rule.window / u32::try_from(burst)?;
        shown.say(format!(
            "GET /api/v1/rules: {BUCKET} (per-user's numbers) is a {} of {burst} tokens, full {} \
             ms after empty: a token back every {} ms",
            rule.algorithm,
            ms(rule.window),
            ms(interval)
        ));
        for attempt in 1..=ATTEMPTS {
            let mut tried = Shown::default();
            let decided = self
                .burst_attempt(attempt, burst, interval, &mut tried)
                .await?;
            // A claim that failed before the store fell behind is not tried away.
            if decided || attempt == ATTEMPTS || !tried.broken.is_empty() {
                shown.lines.append(&mut tried.lines);
                shown.broken.append(&mut tried.broken);
                if !decided {
                    shown.check(
                        false,
                        "in three attempts the store decided every request in time",
                    );
                }
                return Ok(());
            }
            shown.say(format!("attempt {attempt}: {}", tried.lines.join("; ")));
        }
        Ok(())
    }

    /// One try of [`Self::burst_then_refill`] on a key of its own; `false` if the store did not
    /// decide every request in time, so that the counts prove nothing.
    async fn burst_attempt(
        &self,
        attempt: u32,
        burst: u64,
        interval: Duration,
        shown: &mut Shown,
    ) -> anyhow::Result<bool> {
        let key = self.client_key(&format!("burst-{attempt}"));
        let mut bucket = Bucket::full(burst, interval);
        let start = Instant::now();

        let sent = burst + 5;
        let round = self
            .round(&[self.url.as_str()], BUCKET, &key, sent, start)
            .await?;
        if round.undecided(shown) {
            return Ok(false);
        }
        let (admitted, expected) = (round.admitted(), bucket.expect(sent, round.from, round.to));
        bucket.spend(admitted, round.from, round.to);
        let refusal = round.answers.iter().find(|a| a.status == 429);
        shown.say(format!(
            "t={} ms: {sent} requests at once: {admitted} admitted, {} refused with 429 \
             (Retry-After: {}, retry_after_ms {})",
            ms(round.from),
            round.refused(),
            refusal
                .and_then(|a| a.retry_after.as_deref())
                .unwrap_or("-"),
            refusal.map_or(0, |a| a.number("retry_after_ms"))
        ));
        shown.check(
            expected.holds(admitted),
            format!(
                "the burst of {sent} admitted {admitted}: the rule allows {} in the {} ms the \
                 requests were in flight",
                expected.describe(),
                round.millis()
            ),
        );

        let tokens = 3;
        tokio::time::sleep_until((start + round.to + interval * tokens).into()).await;
        let sent = u64::from(tokens) + 5;
        let round = self
            .round(&[self.url.as_str()], BUCKET, &key, sent, start)
            .await?;
        if round.undecided(shown) {
            return Ok(false);
        }
        let (admitted, expected) = (round.admitted(), bucket.expect(sent, round.from, round.to));
        bucket.spend(admitted, round.from, round.to);
        shown.say(format!(
            "t={} ms, {} ms after the burst was answered: {sent} requests at once: {admitted} \
             admitted (the 5 refused before cost nothing, or fewer would be back)",
            ms(round.from),
            ms(interval * tokens)
        ));
        shown.check(
            expected.holds(admitted),
            format!(
                "{admitted} admitted {tokens} intervals of {} ms after the burst: the tokens \
                 back at the rule's rate are {} for when these requests ran",
                ms(interval),
                expected.describe()
            ),
        );

        let full_in = round
            .answers
            .iter()
            .map(|a| a.number("reset_after_ms"))
            .max()
            .unwrap_or(0);
        let waited = Duration::from_millis(full_in) + interval * 5;
        tokio::time::sleep_until((start + round.to + waited).into()).await;
        let sent = burst + 5;
        let round = self
            .round(&[self.url.as_str()], BUCKET, &key, sent, start)
            .await?;
        if round.undecided(shown) {
            return Ok(false);
        }
        let (admitted, expected) = (round.admitted(), bucket.expect(sent, round.from, round.to));
        shown.say(format!(
            "t={} ms: the last answer said full in {} ms; {} ms later, {sent} requests at once: \
             {admitted} admitted",
            ms(round.from),
            ms(Duration::from_millis(full_in)),
            ms(waited)
        ));
        shown.check(
            expected.holds(admitted),
            format!(
                "a bucket idle past full holds its burst and no more: {admitted}, the rule allows \
                 {}",
                expected.describe()
            ),
        );
        Ok(true)
    }

    /// The same limit as a fixed window and as a sliding counter, a batch just before a window
    /// boundary and one just after: the fixed window admits twice its limit in less than a
    /// window, the sliding counter does not.
    async fn boundary_burst(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let (fixed, sliding) = ("walkthrough-fixed", "walkthrough-sliding");
        let (f, s) = (self.rule(fixed).await?, self.rule(sliding).await?);
        anyhow::ensure!(
            (f.limit, f.window) == (s.limit, s.window),
            "{fixed} and {sliding} must have one limit and one window"
        );
        let (limit, window) = (f.limit, f.window);
        shown.say(format!(
            "{fixed} is a {} and {sliding} a {}, both {limit} per {} ms",
            f.algorithm,
            s.algorithm,
            ms(window)
        ));
        // A batch this far before the boundary, and one this far after.
        let offset = window / 4;
        for attempt in 1..=ATTEMPTS {
            let name = |what: &str| self.client_key(&format!("{what}-{attempt}"));
            let start = Instant::now();
            // Where the window ends, by the limiter's clock: a fixed window that has spent
            // answers with the time to its end.
            let probe = self.check(&self.url, fixed, &name("probe"), 1).await?;
            let mut boundary =
                probe.received + Duration::from_millis(probe.number("reset_after_ms"));
            if boundary - probe.received < offset * 2 {
                boundary += window;
            }
            tokio::time::sleep_until((boundary - offset).into()).await;
            let before = self.pair(fixed, sliding, attempt, limit + 5, start).await?;
            tokio::time::sleep_until((boundary + offset).into()).await;
            let after = self.pair(fixed, sliding, attempt, limit + 5, start).await?;
            let mut why = Shown::default();
            if [&before.0, &before.1, &after.0, &after.1]
                .iter()
                .any(|round| round.undecided(&mut why))
            {
                shown.say(format!("attempt {attempt}: {}", why.lines.join("; ")));
                continue;
            }

            let window_ms = interval_ms(window);
            let (Some(end_before), Some(end_after)) = (
                before.0.window_end(start, window_ms),
                after.0.window_end(start, window_ms),
            ) else {
                shown.say(format!(
                    "attempt {attempt}: a batch was not wholly on one side of the boundary (this \
                     machine paused); again at the next one"
                ));
                continue;
            };
            let apart = end_after.abs_diff(end_before);
            if apart.abs_diff(window_ms) > window_ms / 2 {
                shown.say(format!(
                    "attempt {attempt}: the batches fell {apart} ms of window ends apart, not one \
                     window; again"
                ));
                continue;
            }
            // By the limiter's clock: how far into its window the latest request after the
            // boundary can have been, and how far before it the earliest request before.
            let into = after.0.latest_into_window(window_ms);
            let span = before.0.reset_range().1 + before.0.millis() + into;
            if span >= window_ms {
                shown.say(format!(
                    "attempt {attempt}: the batches were up to {span} ms apart, not less than a \
                     window; again"
                ));
                continue;
            }
            let (fixed_before, fixed_after) = (before.0.admitted(), after.0.admitted());
            let (sliding_before, sliding_after) = (before.1.admitted(), after.1.admitted());
            shown.say(format!(
                "{} requests each just before a boundary (the fixed window's answers: its end \
                 {}-{} ms away), {} each just after ({}-{} ms into the next window):",
                limit + 5,
                before.0.reset_range().0,
                before.0.reset_range().1,
                limit + 5,
                window_ms - after.0.reset_range().1,
                window_ms - after.0.reset_range().0,
            ));
            shown.say(format!(
                "  {fixed}:   {fixed_before} + {fixed_after} = {} admitted within {span} ms by \
                 the limiter's clock",
                fixed_before + fixed_after,
            ));
            shown.say(format!(
                "  {sliding}: {sliding_before} + {sliding_after} = {} admitted: after the \
                 boundary the previous window still weighs (1 - elapsed/window)",
                sliding_before + sliding_after
            ));
            shown.check(
                fixed_before == limit && fixed_after == limit,
                format!(
                    "the fixed window admitted {}, twice its limit of {limit}, within {span} ms, \
                     less than its window: the boundary reset its count",
                    fixed_before + fixed_after
                ),
            );
            let allowed_after = limit * into / window_ms;
            shown.check(
                sliding_before == limit && sliding_after <= allowed_after,
                format!(
                    "the sliding counter admitted {limit} then {sliding_after}, at most {limit} × \
                     {into}/{window_ms} = {allowed_after} at {into} ms into the window: {} in all, \
                     not {}",
                    sliding_before + sliding_after,
                    2 * limit
                ),
            );
            return Ok(());
        }
        shown.check(
            false,
            "in three attempts, all decided, the batches fell on both sides of a window boundary",
        );
        Ok(())
    }

    /// `count` requests at once to each of two rules, each with a key of this attempt's.
    async fn pair(
        &self,
        fixed: &str,
        sliding: &str,
        attempt: u32,
        count: u64,
        start: Instant,
    ) -> anyhow::Result<(Round, Round)> {
        let (fixed_key, sliding_key) = (
            self.client_key(&format!("fixed-{attempt}")),
            self.client_key(&format!("sliding-{attempt}")),
        );
        let from = start.elapsed();
        let (fixed, sliding) = futures::future::try_join(
            futures::future::try_join_all(
                (0..count).map(|_| self.check(&self.url, fixed, &fixed_key, 1)),
            ),
            futures::future::try_join_all(
                (0..count).map(|_| self.check(&self.url, sliding, &sliding_key, 1)),
            ),
        )
        .await?;
        let to = start.elapsed();
        let round = |answers| Round { from, to, answers };
        Ok((round(fixed), round(sliding)))
    }

    /// Three limiters on one Redis share one limit; without Redis, each counts alone, and the
    /// stage says so.
    async fn three_instances(&mut self, shown: &mut Shown) -> anyhow::Result<()> {
        let shared = "walkthrough-shared";
        let rule = self.rule(shared).await?;
        let interval = rule.window / u32::try_from(rule.limit)?;
        while self.others.len() < 2 {
            let app = rate_limiter::Application::build(self.settings.clone()).await?;
            self.others.push(format!("http://{}", app.local_addr()));
            self.servers
                .spawn(app.run_until_stopped(self.servers.until()));
        }
        let urls = [self.url.as_str(), &self.others[0], &self.others[1]];
        let ports: Vec<&str> = urls.iter().filter_map(|u| u.rsplit(':').next()).collect();
        let sent = 300;
        let mut attempt = 0;
        let (round, allowed_before, locally_before) = loop {
            attempt += 1;
            let allowed_before = self.decisions(shared, "allowed").await?;
            let locally_before = self.decisions(shared, "rejected_locally").await?;
            let key = self.client_key(&format!("shared-{attempt}"));
            let start = Instant::now();
            let round = self.round(&urls, shared, &key, sent, start).await?;
            let mut why = Shown::default();
            if !round.undecided(&mut why) || attempt == ATTEMPTS {
                shown.lines.append(&mut why.lines);
                break (round, allowed_before, locally_before);
            }
            shown.say(format!("attempt {attempt}: {}", why.lines.join("; ")));
        };
        if round.answers.iter().any(|a| !a.decided()) {
            shown.check(
                false,
                "in three attempts the store decided every request in time",
            );
        }
        let per_instance: Vec<u64> = (0..urls.len())
            .map(|i| {
                round
                    .answers
                    .iter()
                    .skip(i)
                    .step_by(urls.len())
                    .filter(|a| a.allowed())
                    .count() as u64
            })
            .collect();
        let admitted = round.admitted();
        let counted = self.decisions(shared, "allowed").await? - allowed_before;
        let refused = round.refused();
        let locally = self.decisions(shared, "rejected_locally").await? - locally_before;
        shown.say(format!(
            "{shared}: a {} of {} (a token every {} s); three instances on ports {}",
            rule.algorithm,
            rule.limit,
            interval.as_secs(),
            ports.join(", ")
        ));
        let bucket = Bucket::full(rule.limit, interval);
        if self.redis() {
            shown.say(format!(
                "{sent} requests at once for one key, a third to each instance: {} = {admitted} \
                 admitted, {refused} refused ({locally} of them by an instance's over-limit cache, \
                 without asking Redis); all three on {}",
                per_instance
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" + "),
                self.backends
            ));
            let expected = bucket.expect(sent, round.from, round.to);
            shown.check(
                expected.holds(admitted),
                format!(
                    "the three instances admitted {admitted} in all, one limit of {} and not one \
                     each: the rule allows {} in the {} ms",
                    rule.limit,
                    expected.describe(),
                    round.millis()
                ),
            );
            shown.check(
                counted == admitted as f64,
                format!(
                    "ratelimit_decisions_total{{rule=\"{shared}\",outcome=\"allowed\"}}, summed \
                     over the instances, rose by {counted}"
                ),
            );
            return Ok(());
        }
        shown.say(format!(
            "REDIS_URL is not set: each instance runs its own {}, so a limit is per instance",
            self.backends
        ));
        shown.say(format!(
            "{sent} requests at once for one key, a third to each instance: {} = {admitted} \
             admitted, three times the limit",
            per_instance
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" + ")
        ));
        let each = sent / urls.len() as u64;
        let expected = bucket.expect(each, round.from, round.to);
        shown.check(
            per_instance.iter().all(|n| expected.holds(*n)),
            format!(
                "each instance alone admitted {} of its {each} concurrent requests (its store \
                 decides under a lock), and only a shared store makes that one limit",
                expected.describe()
            ),
        );
        shown.say(
            "Three instances sharing one limit need Redis: run \
             REDIS_URL=redis://127.0.0.1:6379 cargo run --release -- walkthrough rate-limiter \
             to see 300 requests over three instances admit exactly 50.",
        );
        Ok(())
    }

    /// `PUT /admin/faults/redis`, as the console flips it.
    async fn set_fault(&self, fault: Value) -> anyhow::Result<()> {
        self.client
            .put(format!("{}/admin/faults/redis", self.url))
            .bearer_auth(self.admin.expose())
            .json(&fault)
            .send()
            .await?
            .error_for_status()
            .context("PUT /admin/faults/redis")?;
        Ok(())
    }

    async fn readiness(&self) -> anyhow::Result<String> {
        let body: Value = self
            .client
            .get(format!("{}/readyz", self.url))
            .send()
            .await?
            .json()
            .await?;
        Ok(body["status"].as_str().unwrap_or("?").to_owned())
    }

    /// The store made unreachable: the fail-closed rule refuses, the fail-open one admits, and
    /// nothing is spent until the switch is undone.
    async fn redis_down(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let key = self.client_key("user:42");
        let closed = self.check(&self.url, FAILS_CLOSED, &key, 1).await?;
        let open = self.check(&self.url, FAILS_OPEN, &key, 1).await?;
        shown.say(format!(
            "{FAILS_CLOSED} (fails closed) and {FAILS_OPEN} (fails open) for {key}: {} and {}, \
             {} and {} left",
            closed.status, open.status, closed.body["remaining"], open.body["remaining"]
        ));
        // With Redis, a key known to be over its limit is refused without asking it.
        let over = self.client_key("over");
        if self.redis() {
            for _ in 0..=closed.number("limit") {
                self.check(&self.url, FAILS_CLOSED, &over, 1).await?;
            }
        }
        let counters = [
            (FAILS_CLOSED, "failed_closed"),
            (FAILS_OPEN, "failed_open"),
            (FAILS_CLOSED, "rejected_locally"),
        ];
        let mut before = Vec::new();
        for (rule, outcome) in counters {
            before.push(self.decisions(rule, outcome).await?);
        }
        let errors_before = self.unreachable().await?;

        self.set_fault(json!({"unreachable": true})).await?;
        shown.say("PUT /admin/faults/redis {\"unreachable\": true}");
        let outage = self.during_outage(&key, &over, shown).await;
        self.set_fault(json!({})).await?;
        let over_status = outage?;

        let mut moved = Vec::new();
        for ((rule, outcome), before) in counters.iter().zip(before) {
            moved.push(self.decisions(rule, outcome).await? - before);
        }
        let errors = self.unreachable().await? - errors_before;
        shown.say(format!(
            "/metrics: ratelimit_decisions_total {FAILS_CLOSED} failed_closed +{}, {FAILS_OPEN} \
             failed_open +{}; ratelimit_store_errors_total{{kind=\"unreachable\"}} +{errors}",
            moved[0], moved[1]
        ));
        shown.check(
            moved[0] == 1.0 && moved[1] == 1.0 && errors >= 2.0,
            "each store failure was counted, as the policy that answered it",
        );
        if self.redis() {
            shown.check(
                over_status == Some(429) && moved[2] == 1.0,
                format!(
                    "a {FAILS_CLOSED} key already over its limit was refused with 429 from the \
                     over-limit cache, without Redis"
                ),
            );
        }

        shown.say("PUT /admin/faults/redis {} (undone)");
        let closed = self.check(&self.url, FAILS_CLOSED, &key, 1).await?;
        let ready = self.readiness().await?;
        shown.say(format!(
            "{FAILS_CLOSED} for {key}: {}, {} left; /readyz {ready}",
            closed.status, closed.body["remaining"]
        ));
        shown.check(
            closed.status == 200 && closed.body["remaining"] == 3 && ready == "ready",
            format!(
                "nothing was spent while the store was away: {FAILS_CLOSED}'s next decision \
                 left 3 of 5"
            ),
        );
        Ok(())
    }

    /// What the decision API answers while the switch is on.
    /// With Redis, the status a key already over its limit got.
    async fn during_outage(
        &self,
        key: &str,
        over: &str,
        shown: &mut Shown,
    ) -> anyhow::Result<Option<u16>> {
        let closed = self.check(&self.url, FAILS_CLOSED, key, 1).await?;
        let open = self.check(&self.url, FAILS_OPEN, key, 1).await?;
        let ready = self.readiness().await?;
        shown.say(format!(
            "{FAILS_CLOSED}: {} {} (Retry-After: {})",
            closed.status,
            closed.body["type"].as_str().unwrap_or(""),
            closed.retry_after.as_deref().unwrap_or("-")
        ));
        shown.say(format!(
            "{FAILS_OPEN}: {}, allowed {}, failed_open {}, RateLimit header {}",
            open.status,
            open.body["allowed"],
            open.body["failed_open"],
            open.ratelimit.as_deref().unwrap_or("none")
        ));
        shown.say(format!("/readyz: {ready}"));
        shown.check(
            closed.status == 503
                && closed.body["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(":limiter-unavailable"))
                && closed.retry_after.as_deref() == Some("1"),
            format!("{FAILS_CLOSED}, which fails closed, refused with 503 and Retry-After: 1"),
        );
        shown.check(
            open.status == 200
                && open.body["allowed"] == true
                && open.failed_open()
                && open.ratelimit.is_none(),
            format!(
                "{FAILS_OPEN}, which fails open, admitted, marked failed_open, with no counts \
                 claimed"
            ),
        );
        shown.check(
            ready == "degraded",
            "/readyz says degraded, not unready: the open rules still answer",
        );
        if !self.redis() {
            return Ok(None);
        }
        let over = self.check(&self.url, FAILS_CLOSED, over, 1).await?;
        shown.say(format!(
            "{FAILS_CLOSED} for a key refused just before: {} (retry in {} ms)",
            over.status,
            over.number("retry_after_ms")
        ));
        Ok(Some(over.status))
    }
}

/// A duration as the demonstrations print it: `2,824`, in milliseconds.
fn ms(duration: Duration) -> String {
    crate::estimate::count(duration.as_millis() as f64)
}

/// A window's length in whole milliseconds.
fn interval_ms(interval: Duration) -> u64 {
    interval.as_millis().max(1) as u64
}

/// Where the fixed window's answers of a batch were decided, by the limiter's clock: each answer
/// carries the time to its window's end (`reset_after_ms`, rounded up).
impl Round {
    /// The smallest and largest time to the window's end the answers gave.
    fn reset_range(&self) -> (u64, u64) {
        let resets = self.answers.iter().map(|a| a.number("reset_after_ms"));
        (resets.clone().min().unwrap_or(0), resets.max().unwrap_or(0))
    }

    /// When the batch's window ends, in milliseconds since `start`, if the whole batch was in
    /// one window: some answer was decided farther from both of its window's edges than the
    /// batch was long, so every request of the batch was decided inside that window.
    fn window_end(&self, start: Instant, window_ms: u64) -> Option<u64> {
        let long = self.millis();
        self.answers
            .iter()
            .map(|a| (a, a.number("reset_after_ms")))
            .find(|(_, reset)| {
                (1..=window_ms).contains(reset) && long < *reset && long <= window_ms - reset
            })
            .map(|(a, reset)| (a.received - start).as_millis() as u64 + reset)
    }

    /// How far into its window the latest request of the batch can have been decided: an answer
    /// `reset` ms from the end was at most `window - reset + 1` ms in, and the batch lasted
    /// `self.millis()`.
    fn latest_into_window(&self, window_ms: u64) -> u64 {
        let (_, longest) = self.reset_range();
        window_ms - longest + 1 + self.millis()
    }
}

#[async_trait]
impl Stage for Live {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn backends(&self) -> String {
        self.backends.clone()
    }

    async fn demonstrate(&mut self, demo: &str, shown: &mut Shown) -> anyhow::Result<()> {
        match demo {
            "burst-then-refill" => self.burst_then_refill(shown).await,
            "boundary-burst" => self.boundary_burst(shown).await,
            "three-instances" => self.three_instances(shown).await,
            "redis-down" => self.redis_down(shown).await,
            other => anyhow::bail!("the rate limiter has no demonstration {other:?}"),
        }
    }

    async fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.servers.stop().await
    }
}
