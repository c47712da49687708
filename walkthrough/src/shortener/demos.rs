//! The shortener's deep-dive claims, shown happening against a shortener started for the
//! walkthrough, through its HTTP API, with `/metrics` as the witness: what reached the database
//! is `shortener_store_queries_total{call}` (counted where every store call passes,
//! `url-shortener/src/store/faulty.rs`), what the cache answered is
//! `shortener_cache_lookups_total{result}`.

use std::{
    collections::HashSet,
    hash::{BuildHasher, RandomState},
    net::SocketAddr,
};

use anyhow::Context;
use async_trait::async_trait;
use serde_json::{Value, json};
use url_shortener::domain::code::{CODE_SPACE, ShortCode};

use crate::stage::{self, Servers, Shown, Stage};

/// The demonstrations, by the ids WALKTHROUGH.toml's claims name.
pub const DEMOS: &[&str] = &[
    "codes-not-enumerable",
    "cached-redirect",
    "negative-cache",
    "exact-visit-limit",
];

/// What reaches the database on a redirect: the lookup of a link, and the visit of a limited one.
const REDIRECT_QUERIES: [&str; 2] = [
    "shortener_store_queries_total{call=\"find_link\"}",
    "shortener_store_queries_total{call=\"consume_visit\"}",
];

/// A shortener started for the walkthrough, and an API key of its own.
pub struct Live {
    servers: Servers,
    url: String,
    backends: String,
    key: String,
    client: reqwest::Client,
}

impl Live {
    /// The shortener as `SHORTENER_*` and the backend variables configure it, on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let mut servers = Servers::new()?;
        let mut settings = url_shortener::Settings::from_env()?;
        settings.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        servers.embed("url-shortener", &mut settings.backends);
        let app = url_shortener::Application::build(settings).await?;
        let (key, _) = app
            .shortener()
            .issue_api_key("walkthrough")
            .await
            .context("issuing the walkthrough's API key")?;
        let (url, backends) = (
            format!("http://{}", app.local_addr()),
            app.describe_backends(),
        );
        servers.spawn(app.run_until_stopped(servers.until()));
        Ok(Self {
            servers,
            url,
            backends,
            key: key.expose().to_owned(),
            client: stage::client(),
        })
    }

    /// Creates a link to a page of its own; `fields` are added to the request (`max_visits`).
    async fn create(&self, fields: Value) -> anyhow::Result<String> {
        let mut body = json!({"url": "https://example.com/walkthrough"});
        body.as_object_mut()
            .expect("an object")
            .extend(fields.as_object().cloned().unwrap_or_default());
        let response = self
            .client
            .post(format!("{}/api/v1/links", self.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        let link: Value = response.json().await?;
        link["code"]
            .as_str()
            .map(str::to_owned)
            .context("the created link has no code")
    }

    /// `GET /api/v1/links/{code}`: the link and its counts, as its owner sees them.
    async fn link(&self, code: &str) -> anyhow::Result<Value> {
        Ok(self
            .client
            .get(format!("{}/api/v1/links/{code}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// `GET /{code}`'s status.
    async fn redirect(&self, code: &str) -> anyhow::Result<u16> {
        Ok(self
            .client
            .get(format!("{}/{code}", self.url))
            .send()
            .await?
            .status()
            .as_u16())
    }

    async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        stage::metric(&self.client, &self.url, series).await
    }

    async fn redirect_queries(&self) -> anyhow::Result<f64> {
        let mut sum = 0.0;
        for series in REDIRECT_QUERIES {
            sum += self.metric(series).await?;
        }
        Ok(sum)
    }

    /// Five links in a row get codes far apart, and the codes next to them lead nowhere.
    async fn codes_not_enumerable(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let mut codes = Vec::new();
        for _ in 0..5 {
            codes.push(self.create(json!({})).await?);
        }
        shown.say(format!(
            "POST /api/v1/links five times in a row: {}",
            codes.join(", ")
        ));
        let numbers: Vec<u64> = codes
            .iter()
            .filter_map(|code| ShortCode::parse(code)?.to_number())
            .collect();
        let gaps: Vec<i128> = numbers
            .windows(2)
            .map(|pair| i128::from(pair[1]) - i128::from(pair[0]))
            .collect();
        shown.say(format!(
            "as base62 numbers, each is this far from the one before: {} (an auto-increment \
             would give 1, 1, 1, 1)",
            gaps.iter()
                .map(|gap| format!("{gap:+}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        shown.check(
            numbers.len() == 5 && gaps.iter().all(|gap| gap.unsigned_abs() > 1_000_000),
            "consecutive links' codes are more than a million apart",
        );
        let ours: HashSet<u64> = numbers.iter().copied().collect();
        let mut neighbours = Vec::new();
        for number in &numbers {
            for next in [number.wrapping_sub(1), number + 1] {
                if next < CODE_SPACE && !ours.contains(&next) {
                    neighbours.push(ShortCode::from_number(next));
                }
            }
        }
        let mut found = 0;
        for code in &neighbours {
            if self.redirect(code.as_str()).await? != 404 {
                found += 1;
            }
        }
        shown.say(format!(
            "GET the {} codes one above and one below each: {found} of them is a link",
            neighbours.len()
        ));
        shown.check(found == 0, "guessing a neighbouring code finds no link");
        Ok(())
    }

    /// A hundred redirects of a cached link send nothing to the database.
    async fn cached_redirect(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let code = self.create(json!({})).await?;
        shown.say(format!(
            "POST /api/v1/links made {code}, and wrote it through to the cache"
        ));
        let queries = self.redirect_queries().await?;
        let hits = self.metric(HIT).await?;
        let flushes_before = self.metric(ADD_VISITS).await?;
        let mut found = 0;
        for _ in 0..100 {
            if self.redirect(&code).await? == 302 {
                found += 1;
            }
        }
        let queries = self.redirect_queries().await? - queries;
        let hits = self.metric(HIT).await? - hits;
        shown.say(format!(
            "GET /{code} 100 times: {found} answered 302; the cache answered {hits} of them"
        ));
        shown.say(format!(
            "the store's queries on the redirect path (find_link, consume_visit) before and \
             after: +{queries}"
        ));
        shown.check(
            found == 100 && hits >= 100.0,
            "every redirect was a 302 the cache answered",
        );
        shown.check(
            queries == 0.0,
            "a cached redirect sends no query to the database",
        );
        // The visits were tallied in memory; the flush writes them within a second.
        let waited = std::time::Instant::now();
        let mut flushes = 0.0;
        while flushes == 0.0 && waited.elapsed() < std::time::Duration::from_secs(3) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            flushes = self.metric(ADD_VISITS).await? - flushes_before;
        }
        let visits = self.link(&code).await?["visits"].take();
        shown.say(format!(
            "the visits were tallied in memory: the flush wrote them {} ms later in {flushes} \
             add_visits statement(s), off the redirect's path; GET /api/v1/links/{code}: visits \
             {visits}",
            waited.elapsed().as_millis()
        ));
        shown.check(
            visits == found && flushes >= 1.0,
            "every visit was counted, and written off the redirect's path",
        );
        Ok(())
    }

    /// Ten unknown codes asked twenty times each reach the database ten times.
    async fn negative_cache(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let random = RandomState::new();
        let unknown: Vec<ShortCode> = (0..10u64)
            .map(|i| ShortCode::from_number(random.hash_one(i) % CODE_SPACE))
            .collect();
        let lookups = self.metric(FIND).await?;
        let negative = self.metric(NEGATIVE_HIT).await?;
        let mut not_found = 0;
        for _ in 0..20 {
            for code in &unknown {
                if self.redirect(code.as_str()).await? == 404 {
                    not_found += 1;
                }
            }
        }
        let lookups = self.metric(FIND).await? - lookups;
        let negative = self.metric(NEGATIVE_HIT).await? - negative;
        shown.say(format!(
            "GET 10 random codes that are no link, 20 times each: {not_found} of 200 answered 404"
        ));
        shown.say(format!(
            "the database was asked {lookups} times (find_link); the cache answered \"no such \
             code\" {negative} times"
        ));
        shown.check(
            not_found == 200 && lookups == 10.0,
            "an unknown code reaches the database once, then the negative cache answers",
        );
        let before = self.metric(FIND).await?;
        let mut refused = 0;
        for _ in 0..50 {
            if self.redirect("not~a~code").await? == 404 {
                refused += 1;
            }
        }
        let lookups = self.metric(FIND).await? - before;
        shown.say(format!(
            "GET /not~a~code 50 times: {refused} answered 404, with {lookups} database lookups"
        ));
        shown.check(
            refused == 50 && lookups == 0.0,
            "a malformed code is refused before any lookup",
        );
        Ok(())
    }

    /// Fifty concurrent redirects of a link limited to ten visits admit exactly ten.
    async fn exact_visit_limit(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let code = self.create(json!({"max_visits": 10})).await?;
        shown.say(format!(
            "POST /api/v1/links made {code} with max_visits: 10"
        ));
        let redirects = (0..50).map(|_| self.redirect(&code));
        let statuses = futures::future::try_join_all(redirects).await?;
        let admitted = statuses.iter().filter(|s| **s == 302).count();
        let refused = statuses.iter().filter(|s| **s == 404).count();
        shown.say(format!(
            "GET /{code} 50 times at once: {admitted} answered 302, {refused} answered 404 \
             (used up)"
        ));
        let link = self.link(&code).await?;
        shown.say(format!(
            "GET /api/v1/links/{code}: visits {}",
            link["visits"]
        ));
        shown.check(
            admitted == 10 && refused == 40 && link["visits"] == 10,
            "exactly 10 of 50 concurrent redirects were admitted, and 10 visits counted",
        );
        Ok(())
    }
}

const HIT: &str = "shortener_cache_lookups_total{result=\"hit\"}";
const NEGATIVE_HIT: &str = "shortener_cache_lookups_total{result=\"negative_hit\"}";
const ADD_VISITS: &str = "shortener_store_queries_total{call=\"add_visits\"}";
const FIND: &str = "shortener_store_queries_total{call=\"find_link\"}";

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
            "codes-not-enumerable" => self.codes_not_enumerable(shown).await,
            "cached-redirect" => self.cached_redirect(shown).await,
            "negative-cache" => self.negative_cache(shown).await,
            "exact-visit-limit" => self.exact_visit_limit(shown).await,
            other => anyhow::bail!("the shortener has no demonstration {other:?}"),
        }
    }

    async fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.servers.stop().await
    }
}
