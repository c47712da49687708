//! The walkthrough as data, for the console's page (`console/src/http/walkthrough.rs`): the same
//! phases, estimates, endpoints and demonstrations as the terminal's, which the page lays out
//! itself; how the page's demonstrations are run ([`Demos`]); and the source files the claims
//! name ([`source`]).

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::{
    Claim, INTERVIEW_MINUTES, Kind, Subject, Walkthrough,
    estimate::{Input, Inputs},
    stage,
};

mod sources {
    include!(concat!(env!("OUT_DIR"), "/sources.rs"));
}

/// A walkthrough for the page.
#[derive(Debug, Serialize)]
pub struct Interview {
    pub system: String,
    pub title: String,
    pub design: String,
    pub minutes: u32,
    /// The estimate's inputs, as the page's form shows them.
    pub inputs: Vec<Input>,
    pub phases: Vec<PhaseView>,
}

#[derive(Debug, Serialize)]
pub struct PhaseView {
    pub kind: Kind,
    pub title: &'static str,
    pub minutes: u32,
    pub question: String,
    /// As WALKTHROUGH.toml writes it: paragraphs apart by a blank line, "- " starting a bullet.
    pub answer: String,
    pub diagram: Option<String>,
    /// What the code says, as the terminal prints it: the estimate, or the endpoints and tables.
    pub generated: Option<String>,
    pub checklist: Vec<String>,
    pub claims: Vec<Claim>,
}

/// `subject`'s walkthrough with `inputs`. The endpoints come from the OpenAPI document at
/// `openapi` (the system the console watches); if it cannot be read, the phase says so.
pub async fn interview(
    subject: &dyn Subject,
    inputs: &Inputs,
    openapi: Option<&str>,
) -> anyhow::Result<Interview> {
    let walkthrough = Walkthrough::parse(subject.text(), subject.demos())?;
    let endpoints = match openapi {
        Some(url) => match stage::endpoints(url).await {
            Ok(endpoints) => stage::render_endpoints(&walkthrough.system, &endpoints),
            Err(err) => format!("Endpoints: the OpenAPI document could not be read: {err:#}\n"),
        },
        None => "Endpoints: the console watches no instance to read them from.\n".to_owned(),
    };
    let phases = walkthrough
        .phase
        .into_iter()
        .map(|phase| PhaseView {
            kind: phase.kind,
            title: phase.kind.title(),
            minutes: phase.minutes,
            generated: match phase.kind {
                Kind::Estimate => Some(subject.estimate(inputs)),
                Kind::ApiAndDataModel => Some(format!("{endpoints}\n{}", subject.data_model())),
                _ => None,
            },
            question: phase.question,
            answer: phase.answer.trim().to_owned(),
            diagram: phase.diagram,
            checklist: phase.checklist,
            claims: phase.claim,
        })
        .collect();
    Ok(Interview {
        system: walkthrough.system,
        title: walkthrough.title,
        design: walkthrough.design,
        minutes: INTERVIEW_MINUTES,
        inputs: inputs.iter().cloned().collect(),
        phases,
    })
}

/// What a demonstration showed, and on what.
#[derive(Debug, Serialize, Deserialize)]
pub struct Demonstration {
    pub lines: Vec<String>,
    /// The checks that failed: empty when the claim held.
    pub broken: Vec<String>,
    /// Where the system it ran on answered, and its backends.
    pub on: String,
}

/// Runs the page's demonstrations, each in a process of its own: `<program> walkthrough <system>
/// --demo <id> --json`, which starts the system, runs the demonstration and stops it. A process
/// of its own, because a process has one metrics registry: in the lab's process, the
/// demonstration's counters would add up with those of the system the console watches, and each
/// would blur the other's. One runs at a time.
pub struct Demos {
    program: PathBuf,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Demos {
    /// `program` takes the `walkthrough` subcommand: `sdlab`, or the console's own binary.
    pub fn new(program: PathBuf) -> Self {
        Self {
            program,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs `demo` of `system`, which the caller has checked exists.
    pub async fn run(&self, system: &str, demo: &str) -> anyhow::Result<Demonstration> {
        let _turn = self.one_at_a_time.lock().await;
        let output = tokio::process::Command::new(&self.program)
            .args(["walkthrough", system, "--demo", demo, "--json"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {}", self.program.display()))?;
        // A claim that did not hold exits 1 and still prints what it showed.
        serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "{} walkthrough {system} --demo {demo} --json failed ({}): {}",
                self.program.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
    }
}

/// The text of a file a walkthrough's claim names (a path from the workspace root), compiled in.
pub fn source(path: &str) -> Option<&'static str> {
    sources::SOURCES
        .iter()
        .find(|(file, _)| *file == path)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SUBJECTS;

    #[test]
    fn every_file_a_claim_names_is_compiled_in() {
        for subject in SUBJECTS {
            let walkthrough = Walkthrough::parse(subject.text(), subject.demos()).unwrap();
            for claim in walkthrough.phase.iter().flat_map(|p| &p.claim) {
                let text = source(&claim.file).unwrap_or_else(|| panic!("{}", claim.file));
                assert!(!text.is_empty(), "{}", claim.file);
            }
        }
        assert!(source("Cargo.toml").is_none());
    }

    #[tokio::test]
    async fn the_interview_has_every_phase_and_moves_its_estimate_with_the_inputs() {
        let subject = crate::subject("url-shortener").unwrap();
        let mut inputs = subject.inputs();
        inputs.set("reads_per_write=100").unwrap();

        let interview = interview(subject, &inputs, None).await.unwrap();

        let kinds: Vec<Kind> = interview.phases.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, Kind::ORDER);
        let estimate = interview.phases[1].generated.as_deref().unwrap();
        assert!(estimate.contains("115,741/s average"), "{estimate}");
        let reference = interview.phases[2].generated.as_deref().unwrap();
        assert!(reference.contains("watches no instance"), "{reference}");
        assert!(reference.contains("CREATE TABLE links ("), "{reference}");
        assert!(
            interview
                .inputs
                .iter()
                .any(|i| i.name == "reads_per_write" && i.value == 100.0)
        );
    }
}
