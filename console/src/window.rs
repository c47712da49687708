//! The history the pages chart: for each system and each of its replicas, one [`Point`] per
//! scrape over the last window (15 minutes by default), in memory. A page that loads asks for all
//! of it, then every second for what is newer, so a reload keeps the history.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::{
    settings::Targets,
    signals::{Delta, Point, Reading},
};

pub struct Window {
    len: usize,
    systems: Vec<SystemHistory>,
}

struct SystemHistory {
    name: String,
    points: VecDeque<Point>,
    instances: Vec<InstanceHistory>,
}

struct InstanceHistory {
    url: Url,
    points: VecDeque<Point>,
    /// The last reading and when it was taken (Unix ms), to take the next delta from.
    last: Option<(i64, Reading)>,
    health: Health,
}

/// What a replica's last scrape found, beside its metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// `/metrics` answered.
    pub up: bool,
    /// `/readyz` answered 200; `None` before the first scrape.
    pub ready: Option<bool>,
    /// `/readyz`'s `checks` (each backend and its state), as the system reports them.
    pub checks: Value,
    /// `/readyz`'s `backends`: what each backend is (embedded, or which engine where).
    pub backends: Value,
    /// Why the last scrape failed, for the page.
    pub error: Option<String>,
}

/// One replica's scrape: its reading (or why there is none) and its readiness.
pub struct Scrape {
    pub reading: Result<Reading, String>,
    pub ready: Option<bool>,
    pub checks: Value,
    pub backends: Value,
}

impl Window {
    /// An empty window of `len` points for each system and replica of `targets`.
    pub fn new(targets: &Targets, len: usize) -> Self {
        let systems = targets
            .iter()
            .map(|target| SystemHistory {
                name: target.system.clone(),
                points: VecDeque::with_capacity(len),
                instances: target
                    .instances
                    .iter()
                    .map(|url| InstanceHistory {
                        url: url.clone(),
                        points: VecDeque::with_capacity(len),
                        last: None,
                        health: Health::default(),
                    })
                    .collect(),
            })
            .collect();
        Self { len, systems }
    }

    /// Records the scrapes taken at `at` (Unix ms) of `system`'s replicas, in the order the
    /// targets list them. The first scrape of a replica adds no point: a rate needs two.
    pub fn record(&mut self, system: &str, at: i64, scrapes: Vec<Scrape>) {
        let len = self.len;
        let Some(history) = self
            .systems
            .iter_mut()
            .find(|history| history.name == system)
        else {
            return;
        };
        let mut total: Option<Delta> = None;
        let mut any_down = false;
        for (instance, scrape) in history.instances.iter_mut().zip(scrapes) {
            instance.health.ready = scrape.ready;
            instance.health.checks = scrape.checks;
            instance.health.backends = scrape.backends;
            match scrape.reading {
                Ok(reading) => {
                    instance.health.up = true;
                    instance.health.error = None;
                    if let Some((then, before)) = &instance.last {
                        let seconds = (at - then) as f64 / 1000.0;
                        let delta = Delta::between(before, &reading, seconds);
                        push(&mut instance.points, Point::new(at, &delta), len);
                        match &mut total {
                            Some(total) => total.add(&delta),
                            None => total = Some(delta),
                        }
                    }
                    instance.last = Some((at, reading));
                }
                Err(error) => {
                    any_down = true;
                    instance.health.up = false;
                    instance.health.error = Some(error);
                    push(&mut instance.points, Point::down(at), len);
                }
            }
        }
        match total {
            Some(total) => push(&mut history.points, Point::new(at, &total), len),
            None if any_down => push(&mut history.points, Point::down(at), len),
            None => {}
        }
    }

    /// Every system's state now: its replicas' health and its latest point.
    pub fn overview(&self) -> Vec<SystemNow> {
        self.systems
            .iter()
            .map(|history| SystemNow {
                name: history.name.clone(),
                instances: history
                    .instances
                    .iter()
                    .map(|instance| InstanceNow {
                        url: instance.url.to_string(),
                        health: instance.health.clone(),
                    })
                    .collect(),
                latest: history.points.back().cloned(),
            })
            .collect()
    }

    /// `system`'s points newer than `since` (Unix ms), summed and per replica; `None` for a
    /// system the console does not watch.
    pub fn points(&self, system: &str, since: i64) -> Option<SystemPoints> {
        let history = self.systems.iter().find(|history| history.name == system)?;
        let newer = |points: &VecDeque<Point>| -> Vec<Point> {
            points
                .iter()
                .filter(|point| point.at > since)
                .cloned()
                .collect()
        };
        Some(SystemPoints {
            system: newer(&history.points),
            instances: history
                .instances
                .iter()
                .map(|instance| InstancePoints {
                    url: instance.url.to_string(),
                    points: newer(&instance.points),
                })
                .collect(),
        })
    }
}

fn push(points: &mut VecDeque<Point>, point: Point, len: usize) {
    if points.len() == len {
        points.pop_front();
    }
    points.push_back(point);
}

#[derive(Debug, Clone, Serialize)]
pub struct SystemNow {
    pub name: String,
    pub instances: Vec<InstanceNow>,
    /// The last point, summed over the replicas; `None` until two scrapes were taken.
    pub latest: Option<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceNow {
    pub url: String,
    #[serde(flatten)]
    pub health: Health,
}

#[derive(Debug, Clone, Serialize)]
pub struct SystemPoints {
    /// Summed over the replicas.
    pub system: Vec<Point>,
    pub instances: Vec<InstancePoints>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstancePoints {
    pub url: String,
    pub points: Vec<Point>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(requests: f64) -> Reading {
        let mut reading = Reading::default();
        reading.counters.insert(
            r#"http_requests_total{route="/x",status="200"}"#.to_owned(),
            requests,
        );
        reading
    }

    fn ok(requests: f64) -> Scrape {
        Scrape {
            reading: Ok(reading(requests)),
            ready: Some(true),
            checks: Value::Null,
            backends: Value::Null,
        }
    }

    fn down() -> Scrape {
        Scrape {
            reading: Err("connection refused".to_owned()),
            ready: None,
            checks: Value::Null,
            backends: Value::Null,
        }
    }

    fn two_replicas() -> Targets {
        Targets::parse("a=http://one:1,http://two:2").unwrap()
    }

    #[test]
    fn replicas_are_summed_and_kept_apart() {
        let mut window = Window::new(&two_replicas(), 10);
        window.record("a", 0, vec![ok(0.0), ok(0.0)]);
        assert!(
            window.points("a", i64::MIN).unwrap().system.is_empty(),
            "one scrape is no rate"
        );
        window.record("a", 1000, vec![ok(10.0), ok(30.0)]);

        let points = window.points("a", i64::MIN).unwrap();
        assert_eq!(points.system.len(), 1);
        assert_eq!(points.system[0].requests_per_s, 40.0);
        assert_eq!(points.instances[0].points[0].requests_per_s, 10.0);
        assert_eq!(points.instances[1].points[0].requests_per_s, 30.0);
    }

    #[test]
    fn a_replica_that_does_not_answer_shows_down_and_the_rest_still_counts() {
        let mut window = Window::new(&two_replicas(), 10);
        window.record("a", 0, vec![ok(0.0), ok(0.0)]);
        window.record("a", 1000, vec![ok(5.0), down()]);

        let now = &window.overview()[0];
        assert!(now.instances[0].health.up);
        assert!(!now.instances[1].health.up);
        assert_eq!(
            now.instances[1].health.error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(now.latest.as_ref().unwrap().requests_per_s, 5.0);

        window.record("a", 2000, vec![down(), down()]);
        assert!(!window.overview()[0].latest.as_ref().unwrap().up);
    }

    #[test]
    fn the_window_keeps_the_newest_points_and_serves_what_is_newer() {
        let mut window = Window::new(&Targets::parse("a=http://one:1").unwrap(), 3);
        for second in 0..6 {
            window.record("a", second * 1000, vec![ok(second as f64)]);
        }
        let all = window.points("a", i64::MIN).unwrap().system;
        let times: Vec<i64> = all.iter().map(|point| point.at).collect();
        assert_eq!(times, [3000, 4000, 5000]);
        let newer = window.points("a", 4000).unwrap().system;
        assert_eq!(newer.len(), 1);
        assert!(window.points("b", 0).is_none());
    }
}
