//! A system as a 45-minute mock interview (issue 21): in the terminal (`sdlab walkthrough`,
//! [`terminal`]) and on its console page.
//!
//! The words are the system's `WALKTHROUGH.toml`, compiled in, whose answers come from its
//! DESIGN.md. What the code knows is asked of the code: the estimates are computed from inputs
//! the user changes with `--set`, what this machine measured is read from DESIGN.md, the
//! endpoints from the OpenAPI document the running system serves, and the tables from the
//! migrations. Each deep dive's claim is shown happening: the walkthrough starts the system
//! ([`stage`]) and runs the claim's demonstration against it, checking what the claim says.
//!
//! Three ways to read it: step by step (Enter goes on, each phase shows its minutes and a
//! running timer), `--all` (everything at once, which is also what the tests read; it fails
//! when a claim did not hold), and `--practice` (the question first, the answer and the
//! checklist only when asked).
//!
//! Each system is a [`Subject`], in a module of its own: `shortener/`, `limiter/`, `payments/`,
//! `notifier/`, `feed/`.

pub mod estimate;
pub mod feed;
pub mod limiter;
pub mod notifier;
pub mod payments;
pub mod shortener;
pub mod stage;
pub mod terminal;
pub mod view;

use std::fmt::Write as _;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use self::{
    estimate::Inputs,
    stage::{Shown, Stage},
};

/// The interview the phases' minutes add up to.
pub const INTERVIEW_MINUTES: u32 = 45;
/// Where the text is wrapped.
const WIDTH: usize = 100;

/// The systems that have a walkthrough.
static SUBJECTS: &[&dyn Subject] = &[
    &shortener::Shortener,
    &limiter::RateLimiter,
    &payments::Payments,
    &notifier::Notifier,
    &feed::FeedService,
];

/// A system a walkthrough is about: what its WALKTHROUGH.toml cannot say, asked of its code.
///
/// `stage` need not be `Send`: it is awaited where it is called, never spawned, and some
/// systems' `Application::build` is not provably `Send` (rust-lang/rust#102211, in the connects
/// of their embedded backends), which the lab's own `main` does not ask of it either.
#[async_trait(?Send)]
pub trait Subject: Sync {
    /// Its WALKTHROUGH.toml, compiled in.
    fn text(&self) -> &'static str;

    /// The estimate's inputs, with DESIGN.md's worked example as their defaults.
    fn inputs(&self) -> Inputs;

    /// The estimate phase's numbers from `inputs`, with what this machine measured beside them.
    fn estimate(&self, inputs: &Inputs) -> String;

    /// The data model (tables, keys, topics) from the code that defines it.
    fn data_model(&self) -> String;

    /// The demonstrations its stage runs, by the ids WALKTHROUGH.toml's claims name.
    fn demos(&self) -> &'static [&'static str];

    /// Starts the system (and whatever else the demonstrations need).
    async fn stage(&self) -> anyhow::Result<Box<dyn Stage>>;
}

/// A walkthrough as its TOML file holds it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Walkthrough {
    pub system: String,
    pub title: String,
    pub design: String,
    pub phase: Vec<Phase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub kind: Kind,
    pub minutes: u32,
    pub question: String,
    pub answer: String,
    /// Text to print as it is (a diagram), after the answer.
    #[serde(default)]
    pub diagram: Option<String>,
    pub checklist: Vec<String>,
    #[serde(default)]
    pub claim: Vec<Claim>,
}

/// The interview's phases, in the order they must come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Clarify,
    Estimate,
    ApiAndDataModel,
    HighLevelDesign,
    DeepDives,
    TradeOffsAndFailureModes,
    AtScale,
}

impl Kind {
    pub const ORDER: [Kind; 7] = [
        Kind::Clarify,
        Kind::Estimate,
        Kind::ApiAndDataModel,
        Kind::HighLevelDesign,
        Kind::DeepDives,
        Kind::TradeOffsAndFailureModes,
        Kind::AtScale,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Kind::Clarify => "Clarify the requirements",
            Kind::Estimate => "Estimate",
            Kind::ApiAndDataModel => "API and data model",
            Kind::HighLevelDesign => "High-level design",
            Kind::DeepDives => "Deep dives",
            Kind::TradeOffsAndFailureModes => "Trade-offs and failure modes",
            Kind::AtScale => "At 10x and 100x",
        }
    }
}

/// A deep dive's claim, the file that implements it, and how it is shown.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub claim: String,
    /// A path from the workspace root.
    pub file: String,
    /// The test that holds the claim, if one does beside the demonstration.
    #[serde(default)]
    pub test: Option<String>,
    /// The live demonstration that shows it, by the id the system's stage knows it by.
    #[serde(default)]
    pub demo: Option<String>,
}

impl Walkthrough {
    /// Parses a walkthrough and checks what serde cannot: the phases in the interview's order,
    /// their minutes adding up to the interview, and every demonstration one `demos` knows.
    pub fn parse(text: &str, demos: &[&str]) -> anyhow::Result<Self> {
        let walkthrough: Self = toml::from_str(text)?;
        let kinds: Vec<Kind> = walkthrough.phase.iter().map(|p| p.kind).collect();
        anyhow::ensure!(
            kinds == Kind::ORDER,
            "the phases must be {:?} in that order, not {kinds:?}",
            Kind::ORDER
        );
        let minutes: u32 = walkthrough.phase.iter().map(|p| p.minutes).sum();
        anyhow::ensure!(
            minutes == INTERVIEW_MINUTES,
            "the phases take {minutes} minutes, not {INTERVIEW_MINUTES}"
        );
        for claim in walkthrough.phase.iter().flat_map(|p| &p.claim) {
            if let Some(demo) = &claim.demo {
                anyhow::ensure!(
                    demos.contains(&demo.as_str()),
                    "no demonstration is called {demo:?}; there are {demos:?}"
                );
            }
        }
        Ok(walkthrough)
    }
}

/// One phase ready to show: the question, then what answers it.
pub struct Step {
    pub heading: String,
    pub minutes: u32,
    pub question: String,
    pub answer: Vec<Part>,
}

/// A piece of an answer: text, or a live demonstration to run and show.
pub enum Part {
    Text(String),
    Demo(String),
}

/// The subject called `system`, or an error saying which there are.
pub fn subject(system: &str) -> anyhow::Result<&'static dyn Subject> {
    for subject in SUBJECTS {
        if Walkthrough::parse(subject.text(), subject.demos())?.system == system {
            return Ok(*subject);
        }
    }
    anyhow::bail!("no system is called {system:?}; `sdlab walkthrough` lists them")
}

/// `sdlab walkthrough` without a system.
pub fn list() -> anyhow::Result<String> {
    let mut out = String::from("Walkthroughs (cargo run --release -- walkthrough <system>):\n");
    for subject in SUBJECTS {
        let walkthrough = Walkthrough::parse(subject.text(), subject.demos())?;
        let _ = writeln!(out, "  {:<16} {}", walkthrough.system, walkthrough.title);
    }
    out.push_str(
        "Options: --all prints every step and runs every demonstration at once, --demo <id> runs\n\
         one, --practice hides each answer until you ask, --set name=value changes an estimate's\n\
         input.\n",
    );
    Ok(out)
}

/// What `sdlab walkthrough <system> --all` prints, and the claims that did not hold.
pub struct Rendered {
    pub text: String,
    pub broken: Vec<String>,
}

/// `sdlab walkthrough <system> --all`: starts the system, prints every step and runs every
/// demonstration, then stops it.
pub async fn render(subject: &dyn Subject, inputs: &Inputs) -> anyhow::Result<Rendered> {
    let mut stage = subject.stage().await?;
    let rendered = render_on(subject, inputs, stage.as_mut()).await;
    stage.stop().await?;
    rendered
}

async fn render_on(
    subject: &dyn Subject,
    inputs: &Inputs,
    stage: &mut dyn Stage,
) -> anyhow::Result<Rendered> {
    let (title, steps) = steps(subject, inputs, stage).await?;
    let mut text = format!("{title}\n");
    let mut broken = Vec::new();
    for step in &steps {
        let _ = write!(text, "\n{}\n{}\n", banner(step), step.question);
        for part in &step.answer {
            match part {
                Part::Text(part) => text.push_str(part),
                Part::Demo(demo) => {
                    let shown = demonstrate(stage, demo).await;
                    text.push_str(&render_shown(&shown.lines));
                    broken.extend(shown.broken);
                }
            }
        }
    }
    Ok(Rendered { text, broken })
}

/// Runs one demonstration; one that could not run is a claim that did not hold.
pub async fn demonstrate(stage: &mut dyn Stage, demo: &str) -> Shown {
    let mut shown = Shown::default();
    if let Err(err) = stage.demonstrate(demo, &mut shown).await {
        shown.check(false, format!("the demonstration {demo} ran: {err:#}"));
    }
    shown
}

pub fn render_shown(lines: &[String]) -> String {
    let mut out = String::from("     live:\n");
    for line in lines {
        out.push_str(&indent(line, "       ", "         "));
    }
    out
}

pub fn banner(step: &Step) -> String {
    let title = format!(
        "== {} ({} of {INTERVIEW_MINUTES} min) ",
        step.heading, step.minutes
    );
    let fill = WIDTH.saturating_sub(title.chars().count());
    format!("{title}{}", "=".repeat(fill))
}

/// The walkthrough's title line and its steps.
pub async fn steps(
    subject: &dyn Subject,
    inputs: &Inputs,
    stage: &dyn Stage,
) -> anyhow::Result<(String, Vec<Step>)> {
    let walkthrough = Walkthrough::parse(subject.text(), subject.demos())?;
    let endpoints = stage::endpoints(&stage.url()).await?;
    let total = walkthrough.phase.len();
    let steps = walkthrough
        .phase
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let mut answer = wrap(&phase.answer);
            if let Some(diagram) = &phase.diagram {
                answer = format!("{answer}\n{}\n", diagram.trim_end_matches('\n'));
            }
            let mut parts = Vec::new();
            let generated = match phase.kind {
                Kind::Estimate => subject.estimate(inputs),
                Kind::ApiAndDataModel => format!(
                    "{}\n{}",
                    stage::render_endpoints(&walkthrough.system, &endpoints),
                    subject.data_model()
                ),
                _ => String::new(),
            };
            if !generated.is_empty() {
                answer = format!("{answer}\n{generated}");
            }
            if !phase.claim.is_empty() {
                answer.push('\n');
            }
            for (i, claim) in phase.claim.iter().enumerate() {
                answer.push_str(&render_claim(i + 1, claim));
                if let Some(demo) = &claim.demo {
                    parts.push(Part::Text(std::mem::take(&mut answer)));
                    parts.push(Part::Demo(demo.clone()));
                }
            }
            let _ = write!(answer, "\nA strong answer covers:\n");
            for item in &phase.checklist {
                answer.push_str(&indent(&format!("[ ] {item}"), "  ", "      "));
            }
            parts.push(Part::Text(answer));
            Step {
                heading: format!("{}/{total} {}", i + 1, phase.kind.title()),
                minutes: phase.minutes,
                question: wrap(&format!("Interviewer: {}", phase.question)),
                answer: parts,
            }
        })
        .collect();
    let title = format!(
        "{}: {INTERVIEW_MINUTES} minutes, answered from {}\n{}",
        walkthrough.title,
        walkthrough.design,
        indent(
            &format!(
                "(the live parts run on {}: {})",
                stage.url(),
                stage.backends()
            ),
            "",
            " "
        )
        .trim_end()
    );
    Ok((title, steps))
}

fn render_claim(number: usize, claim: &Claim) -> String {
    let mut out = indent(&format!("{number}. {}", claim.claim), "  ", "     ");
    let _ = writeln!(out, "     implemented in {}", claim.file);
    if let Some(test) = &claim.test {
        let _ = writeln!(out, "     held by the test {test}");
    }
    out
}

/// Wraps TOML prose at [`WIDTH`]: paragraphs are separated by a blank line, and a line starting
/// with "- " is a bullet of its own.
fn wrap(text: &str) -> String {
    let mut out = String::new();
    for paragraph in text.trim().split("\n\n") {
        if !out.is_empty() {
            out.push('\n');
        }
        let mut items: Vec<String> = Vec::new();
        for line in paragraph.lines() {
            match items.last_mut() {
                Some(item) if !line.starts_with("- ") => {
                    item.push(' ');
                    item.push_str(line.trim());
                }
                _ => items.push(line.trim().to_owned()),
            }
        }
        for item in items {
            let hang = if item.starts_with("- ") { "  " } else { "" };
            out.push_str(&indent(&item, "", hang));
        }
    }
    out
}

/// `text` wrapped at [`WIDTH`], its first line after `first`, the others after `rest`.
fn indent(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::from(first);
    let mut column = first.len();
    let mut line_start = true;
    for word in text.split_whitespace() {
        if !line_start && column + 1 + word.chars().count() > WIDTH {
            out.push('\n');
            out.push_str(rest);
            column = rest.len();
            line_start = true;
        }
        if !line_start {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.chars().count();
        line_start = false;
    }
    out.push('\n');
    out
}

/// `walkthrough <system> --all` as CI runs it, checked for what every walkthrough must hold:
/// every claim held, every phase in its order, every demonstration shown. Its text, for the
/// system's own checks (its estimates, endpoints and tables).
#[cfg(test)]
async fn all_checked(system: &str) -> String {
    let subject = subject(system).unwrap();
    let rendered = render(subject, &subject.inputs()).await.unwrap();
    let out = rendered.text;
    assert!(rendered.broken.is_empty(), "{:?}\n{out}", rendered.broken);
    let mut at = 0;
    for kind in Kind::ORDER {
        at += out[at..]
            .find(kind.title())
            .unwrap_or_else(|| panic!("{} missing or out of order:\n{out}", kind.title()));
    }
    let demos = subject.demos().len();
    assert_eq!(out.matches("     live:").count(), demos, "{out}");
    assert!(out.matches("held: ").count() >= demos, "{out}");
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_walkthrough_parses_with_its_phases_in_order_and_every_demonstration_used() {
        for subject in SUBJECTS {
            let walkthrough = Walkthrough::parse(subject.text(), subject.demos()).unwrap();

            let used: Vec<&str> = walkthrough
                .phase
                .iter()
                .flat_map(|p| &p.claim)
                .filter_map(|c| c.demo.as_deref())
                .collect();
            for demo in subject.demos() {
                assert!(
                    used.contains(demo),
                    "{}: {demo} is shown by no claim",
                    walkthrough.system
                );
            }
        }
    }

    #[test]
    fn an_unknown_field_or_demonstration_is_refused() {
        let text = shortener::TEXT.replacen("minutes = 5", "minutes = 5\nminuets = 5", 1);
        let err = Walkthrough::parse(&text, shortener::DEMOS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("minuets"), "{err}");

        let err = Walkthrough::parse(shortener::TEXT, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no demonstration is called"), "{err}");
    }

    #[test]
    fn phases_out_of_order_are_refused() {
        let text = shortener::TEXT.replacen("kind = \"clarify\"", "kind = \"at-scale\"", 1);

        assert!(Walkthrough::parse(&text, shortener::DEMOS).is_err());
    }

    #[test]
    fn every_file_a_claim_names_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for subject in SUBJECTS {
            let walkthrough = Walkthrough::parse(subject.text(), subject.demos()).unwrap();

            for claim in walkthrough.phase.iter().flat_map(|p| &p.claim) {
                assert!(root.join(&claim.file).is_file(), "{}", claim.file);
            }
            assert!(root.join(&walkthrough.design).is_file());
        }
    }

    /// The walkthrough as CI runs it: every phase in order, the estimates, the endpoints the
    /// running shortener serves, and every demonstration holding (on the real backends too, when
    /// `DATABASE_URL` and `REDIS_URL` are set).
    #[tokio::test(flavor = "multi_thread")]
    async fn all_prints_every_phase_in_order_and_every_claim_holds_live() {
        let out = &crate::all_checked("url-shortener").await;

        for estimate in [
            "1,157/s",
            "11,574/s",
            "365,000,000,000",
            "7 base62",
            "80.3 TB",
            "1.5 GB",
            "11.6 MB/s",
        ] {
            assert!(out.contains(estimate), "{estimate} missing:\n{out}");
        }
        for line in ["GET     /{code}", "POST    /api/v1/links"] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
        assert!(out.contains("CREATE TABLE links ("), "{out}");
        // Prose is wrapped; the migration's lines are printed as they are.
        let prose = out
            .lines()
            .filter(|l| !shortener::MIGRATION.contains(l.trim()));
        assert!(
            prose.clone().all(|l| l.chars().count() <= WIDTH),
            "{:?}",
            prose.max_by_key(|l| l.chars().count())
        );
    }

    #[test]
    fn a_changed_input_moves_the_printed_estimates() {
        let subject = subject("url-shortener").unwrap();
        let mut inputs = subject.inputs();
        inputs.set("reads_per_write=100").unwrap();

        let out = subject.estimate(&inputs);

        assert!(out.contains("115,741/s average"), "{out}");
        assert!(!out.contains("11,574/s average"), "{out}");
    }

    #[test]
    fn every_system_of_the_workspace_has_a_walkthrough_and_no_other_is_found() {
        let list = list().unwrap();
        for system in [
            "url-shortener",
            "rate-limiter",
            "idempotency-demo",
            "notifier",
            "feed-service",
        ] {
            let found = subject(system).unwrap();
            let walkthrough = Walkthrough::parse(found.text(), found.demos()).unwrap();
            assert_eq!(walkthrough.system, system);
            assert!(list.contains(system), "{list}");
        }
        let err = subject("someone-elses").err().unwrap();
        assert!(err.to_string().contains("lists them"), "{err}");
    }

    #[test]
    fn prose_is_wrapped_at_the_width_with_bullets_hanging() {
        let text = format!("Intro.\n\n- {}\n- short", "word ".repeat(40));

        let out = wrap(&text);

        assert!(out.lines().all(|l| l.len() <= WIDTH), "{out}");
        assert!(out.contains("\n  word"), "{out}");
        assert!(out.ends_with("- short\n"), "{out}");
    }
}
