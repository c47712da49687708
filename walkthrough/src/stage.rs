//! What a walkthrough runs its live parts on: the system started for it, and what a
//! demonstration shows.
//!
//! A walkthrough starts the system it is about itself, in this process, through the same
//! `Application::build` its own binary and the lab use, on a free port of 127.0.0.1. So it
//! needs nothing running first, and a lab already running on the usual ports is left alone. The
//! backends are the usual choice: PostgreSQL, Redis and Kafka when `DATABASE_URL`, `REDIS_URL` and
//! `KAFKA_BROKERS` are set, else the embedded ones, whose files go to a temporary directory
//! removed at the end (the lab's `data/` is not touched).

use std::future::Future;

use anyhow::Context;
use async_trait::async_trait;
use platform::{
    config::{Backends, DatabaseConfig, TopicsConfig},
    shutdown::CancellationToken,
};
use tokio::task::JoinSet;

/// The system a walkthrough started, which its demonstrations run against.
#[async_trait]
pub trait Stage: Send {
    /// Where the system answers (its `/openapi.json` is read there).
    fn url(&self) -> String;

    /// What it runs on, e.g. "embedded SQLite, in-process cache".
    fn backends(&self) -> String;

    /// Runs the demonstration `demo` (an id a claim of WALKTHROUGH.toml names), saying what it
    /// does and checking what the claim says. An error is a demonstration that could not run,
    /// which counts as a claim that did not hold.
    async fn demonstrate(&mut self, demo: &str, shown: &mut Shown) -> anyhow::Result<()>;

    /// Stops what was started, gracefully.
    async fn stop(self: Box<Self>) -> anyhow::Result<()>;
}

/// What a demonstration did, line by line, and which of its checks failed.
#[derive(Debug, Default)]
pub struct Shown {
    pub lines: Vec<String>,
    pub broken: Vec<String>,
}

impl Shown {
    /// A line of what happened: a request and its answer, a counter's value.
    pub fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// What the claim says, checked: printed as held, or as not held and counted, so that
    /// `--all` (and CI) fails.
    pub fn check(&mut self, held: bool, what: impl Into<String>) {
        let what = what.into();
        if held {
            self.lines.push(format!("held: {what}"));
        } else {
            self.lines.push(format!("NOT HELD: {what}"));
            self.broken.push(what);
        }
    }
}

/// The servers a stage started, and the temporary directory their embedded backends keep their
/// files in.
pub struct Servers {
    stop: CancellationToken,
    running: JoinSet<anyhow::Result<()>>,
    dir: tempfile::TempDir,
}

impl Servers {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            stop: CancellationToken::new(),
            running: JoinSet::new(),
            dir: tempfile::Builder::new()
                .prefix("sdlab-walkthrough-")
                .tempdir()
                .context("making a directory for the embedded backends")?,
        })
    }

    /// Points `backends` that are embedded at files of this stage's own directory; real ones are
    /// left as they are.
    pub fn embed(&self, system: &str, backends: &mut Backends) {
        if let DatabaseConfig::Sqlite { path } = &mut backends.database {
            *path = self.dir.path().join(format!("{system}.sqlite"));
        }
        if let TopicsConfig::Embedded { path } = &mut backends.topics {
            *path = self.dir.path().join("topics.sqlite");
        }
    }

    /// The future a system's `run_until_stopped` takes: it resolves when the stage stops.
    pub fn until(&self) -> impl Future<Output = ()> + Send + 'static {
        self.stop.clone().cancelled_owned()
    }

    /// Runs a system (its `run_until_stopped(self.until())`) until the stage stops.
    pub fn spawn<E>(&mut self, running: impl Future<Output = Result<(), E>> + Send + 'static)
    where
        anyhow::Error: From<E>,
    {
        self.running
            .spawn(async move { running.await.map_err(anyhow::Error::from) });
    }

    /// Stops every server and waits for each; the first failure is returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let mut first_error = None;
        while let Some(joined) = self.running.join_next().await {
            if let Err(err) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The HTTP client demonstrations use: it shows a redirect instead of following it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with no TLS settings builds")
}

/// The sum of the `/metrics` lines at `url` of `series`, as Prometheus would read it (0 if there
/// is none): `name` alone sums every line of that name; `name{a="1",b="2"}` the lines carrying
/// each of those labels, in whatever order and beside whatever other labels the exporter wrote.
pub async fn metric(client: &reqwest::Client, url: &str, series: &str) -> anyhow::Result<f64> {
    let page = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(sum(&page, series))
}

/// [`metric`] on a page already read. Label values are taken not to hold a comma.
fn sum(page: &str, series: &str) -> f64 {
    let (name, labels) = series.split_once('{').unwrap_or((series, ""));
    let labels: Vec<&str> = labels
        .trim_end_matches('}')
        .split(',')
        .filter(|label| !label.is_empty())
        .collect();
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (line_name, line_labels) = series.split_once('{').unwrap_or((series, ""));
            (line_name == name && labels.iter().all(|label| line_labels.contains(label)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// One operation of an OpenAPI document.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
    pub summary: String,
}

/// The operations of the OpenAPI document the system serves at `url`: the very document a client
/// gets, so the walkthrough cannot list an endpoint the service lacks.
pub async fn endpoints(url: &str) -> anyhow::Result<Vec<Endpoint>> {
    let document: serde_json::Value = client()
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("reading {url}/openapi.json"))?
        .json()
        .await?;
    Ok(operations(&document))
}

/// Every method of every path, in the document's order (paths sorted, as utoipa writes them).
fn operations(document: &serde_json::Value) -> Vec<Endpoint> {
    let mut endpoints = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return endpoints;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, operation) in item {
            if operation.get("responses").is_none() {
                continue; // `parameters` and other path-level fields
            }
            endpoints.push(Endpoint {
                method: method.to_uppercase(),
                path: path.clone(),
                summary: operation["summary"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    endpoints
}

/// The endpoints as the walkthrough prints them.
pub fn render_endpoints(system: &str, endpoints: &[Endpoint]) -> String {
    use std::fmt::Write as _;
    let width = endpoints.iter().map(|e| e.path.len()).max().unwrap_or(0);
    let mut out = format!("Endpoints (from the {system}'s /openapi.json):\n");
    for e in endpoints {
        // The summary wraps under itself.
        let head = format!("  {:<7} {:<width$} ", e.method, e.path);
        let line = crate::indent(&e.summary, &head, &" ".repeat(head.len()));
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_every_method_of_every_path_but_path_level_fields() {
        let document = serde_json::json!({"paths": {
            "/a": {"get": {"summary": "A", "responses": {}}, "parameters": []},
            "/b/{id}": {"put": {"responses": {}}, "delete": {"summary": "B", "responses": {}}},
        }});

        let ops = operations(&document);

        let mut listed: Vec<_> = ops
            .iter()
            .map(|e| (e.method.as_str(), e.path.as_str()))
            .collect();
        listed.sort_unstable();
        assert_eq!(
            listed,
            [("DELETE", "/b/{id}"), ("GET", "/a"), ("PUT", "/b/{id}")]
        );
    }

    #[test]
    fn a_series_is_summed_by_its_name_and_the_labels_asked_for_in_any_order() {
        let page = "# TYPE hits counter\n\
                    hits{rule=\"a\",outcome=\"allowed\"} 3\n\
                    hits{outcome=\"allowed\",rule=\"b\"} 4\n\
                    hits{rule=\"a\",outcome=\"denied\"} 5\n\
                    hits_total 100\n";

        assert_eq!(sum(page, "hits"), 12.0);
        assert_eq!(sum(page, "hits{outcome=\"allowed\"}"), 7.0);
        assert_eq!(sum(page, "hits{outcome=\"allowed\",rule=\"a\"}"), 3.0);
        assert_eq!(sum(page, "hits{rule=\"c\"}"), 0.0);
    }

    #[test]
    fn a_check_that_fails_is_printed_and_counted() {
        let mut shown = Shown::default();

        shown.check(true, "one");
        shown.check(false, "two");

        assert_eq!(shown.lines, ["held: one", "NOT HELD: two"]);
        assert_eq!(shown.broken, ["two"]);
    }
}
