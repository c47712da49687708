//! `sdlab walkthrough`: a system as a 45-minute mock interview in the terminal (issue 21).
//!
//! The words are the system's `WALKTHROUGH.toml`, compiled in, whose answers come from its
//! DESIGN.md. What the code knows is asked of the code: the estimates are computed
//! ([`estimate`]) from inputs the user changes with `--set`, what this machine measured is read
//! from DESIGN.md, the endpoints from the OpenAPI document and the tables from the migrations
//! ([`shortener`]).
//!
//! Three ways to read it: step by step (Enter goes on, each phase shows its minutes and a
//! running timer), `--all` (everything at once, which is also what the tests read), and
//! `--practice` (the question first, the answer and the checklist only when asked).
//!
//! Only the URL shortener has one so far; its live demonstrations are listed, not run yet.

pub mod estimate;
pub mod shortener;

use std::{
    fmt::Write as _,
    io::{BufRead, IsTerminal, Write as _},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Deserialize;

use self::estimate::Inputs;

/// The interview the phases' minutes add up to.
const INTERVIEW_MINUTES: u32 = 45;
/// Where the text is wrapped.
const WIDTH: usize = 100;

const URL_SHORTENER: &str = include_str!("../../../url-shortener/WALKTHROUGH.toml");

/// The systems still to come, named as the lab names them.
const COMING: [&str; 4] = [
    "rate-limiter",
    "idempotency-demo",
    "notifier",
    "feed-service",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The system to walk through; without it, the systems that have a walkthrough.
    system: Option<String>,
    /// Print every step at once instead of waiting for Enter.
    #[arg(long, conflicts_with = "practice")]
    all: bool,
    /// Show each phase's question and a timer; the answer and its checklist when you press Enter.
    #[arg(long)]
    practice: bool,
    /// Change an estimate's input, e.g. `--set links_per_day=200000000` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

/// A deep dive's claim, the file that implements it, and how it is (or will be) shown.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub claim: String,
    /// A path from the workspace root.
    pub file: String,
    /// The test that holds the claim today, if one does.
    #[serde(default)]
    pub test: Option<String>,
    /// The live demonstration issue 21 asks for, to be run by a later increment.
    #[serde(default)]
    pub demonstration: Option<String>,
}

impl Walkthrough {
    /// Parses a walkthrough and checks what serde cannot: the phases in the interview's order,
    /// their minutes adding up to the interview.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
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
        Ok(walkthrough)
    }
}

/// One phase ready to print: the question, then what answers it.
struct Step {
    heading: String,
    minutes: u32,
    question: String,
    answer: String,
}

/// Runs `sdlab walkthrough …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let Some(system) = args.system else {
        print!("{}", list()?);
        return Ok(());
    };
    let mut inputs = Inputs::default();
    for assignment in &args.set {
        inputs.set(assignment).map_err(anyhow::Error::msg)?;
    }
    if args.all {
        print!("{}", render(&system, &inputs).await?);
        return Ok(());
    }
    let (title, steps) = steps(&system, &inputs).await?;
    let practice = args.practice;
    tokio::task::spawn_blocking(move || step_through(&title, &steps, practice))
        .await
        .context("the walkthrough's terminal thread panicked")?
}

/// `sdlab walkthrough` without a system.
fn list() -> anyhow::Result<String> {
    let mut out = String::from("Walkthroughs (cargo run --release -- walkthrough <system>):\n");
    let shortener = Walkthrough::parse(URL_SHORTENER)?;
    let _ = writeln!(out, "  {:<16} {}", shortener.system, shortener.title);
    let _ = writeln!(out, "Coming in later increments: {}.", COMING.join(", "));
    out.push_str(
        "Options: --all prints every step at once, --practice hides each answer until you ask,\n\
         --set name=value changes an estimate's input.\n",
    );
    Ok(out)
}

/// `sdlab walkthrough <system> --all`: the CLI prints exactly this.
pub async fn render(system: &str, inputs: &Inputs) -> anyhow::Result<String> {
    let (title, steps) = steps(system, inputs).await?;
    Ok(title + "\n\n" + &render_all(&steps))
}

fn render_all(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|step| {
            format!(
                "{}\n{}\n{}",
                banner(step),
                step.question,
                step.answer.trim_end()
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
        + "\n"
}

fn banner(step: &Step) -> String {
    let title = format!(
        "== {} ({} of {INTERVIEW_MINUTES} min) ",
        step.heading, step.minutes
    );
    let fill = WIDTH.saturating_sub(title.chars().count());
    format!("{title}{}", "=".repeat(fill))
}

/// The walkthrough's title line and its steps.
async fn steps(system: &str, inputs: &Inputs) -> anyhow::Result<(String, Vec<Step>)> {
    let text = match system {
        "url-shortener" => URL_SHORTENER,
        other if COMING.contains(&other) => {
            anyhow::bail!("{other} has no walkthrough yet: it comes in a later increment")
        }
        other => anyhow::bail!("no system is called {other:?}; `sdlab walkthrough` lists them"),
    };
    let walkthrough = Walkthrough::parse(text)?;
    let endpoints = shortener::endpoints()
        .await
        .context("reading the shortener's OpenAPI document")?;
    let total = walkthrough.phase.len();
    let steps = walkthrough
        .phase
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let mut answer = wrap(&phase.answer);
            let generated = match phase.kind {
                Kind::Estimate => estimate::render(inputs, shortener::measured().as_ref()),
                Kind::ApiAndDataModel => format!(
                    "{}\n{}",
                    shortener::render_endpoints(&endpoints),
                    shortener::render_tables()
                ),
                Kind::DeepDives => render_claims(&phase.claim),
                _ => String::new(),
            };
            if let Some(diagram) = &phase.diagram {
                answer = format!("{answer}\n{}\n", diagram.trim_end_matches('\n'));
            }
            if !generated.is_empty() {
                answer = format!("{answer}\n{generated}");
            }
            let _ = write!(answer, "\nA strong answer covers:\n");
            for item in &phase.checklist {
                answer.push_str(&indent(&format!("[ ] {item}"), "  ", "      "));
            }
            Step {
                heading: format!("{}/{total} {}", i + 1, phase.kind.title()),
                minutes: phase.minutes,
                question: wrap(&format!("Interviewer: {}", phase.question)),
                answer,
            }
        })
        .collect();
    let title = format!(
        "{}: {INTERVIEW_MINUTES} minutes, answered from {}",
        walkthrough.title, walkthrough.design
    );
    Ok((title, steps))
}

fn render_claims(claims: &[Claim]) -> String {
    let mut out = String::new();
    for (i, claim) in claims.iter().enumerate() {
        out.push_str(&indent(
            &format!("{}. {}", i + 1, claim.claim),
            "  ",
            "     ",
        ));
        let _ = writeln!(out, "     implemented in {}", claim.file);
        if let Some(test) = &claim.test {
            let _ = writeln!(out, "     held by the test {test}");
        }
        if let Some(demo) = &claim.demonstration {
            out.push_str(&indent(
                &format!("live demonstration (a later increment): {demo}"),
                "     ",
                "       ",
            ));
        }
    }
    out
}

/// Step by step: each phase's question, a running timer until Enter, then its answer (at once,
/// or after a second Enter in practice mode, so the user answers before reading ours).
fn step_through(title: &str, steps: &[Step], practice: bool) -> anyhow::Result<()> {
    let interview = Instant::now();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{title}")?;
    for step in steps {
        let phase = Instant::now();
        writeln!(stdout, "\n{}\n{}", banner(step), step.question)?;
        if practice {
            wait_for_enter("Answer aloud; Enter shows ours.", step, phase, interview)?;
        }
        writeln!(stdout, "\n{}", step.answer.trim_end())?;
        wait_for_enter("Enter goes on.", step, phase, interview)?;
    }
    writeln!(
        stdout,
        "\nDone in {} of {INTERVIEW_MINUTES}:00.",
        clock(interview.elapsed())
    )?;
    Ok(())
}

/// Waits for Enter, redrawing `prompt` with the phase's and the interview's time every second
/// when stdout is a terminal (once otherwise, so a pipe gets no carriage returns).
fn wait_for_enter(
    prompt: &str,
    step: &Step,
    phase: Instant,
    interview: Instant,
) -> anyhow::Result<()> {
    let line = move || {
        format!(
            "\r{prompt} [this phase {} of {}:00, interview {} of {INTERVIEW_MINUTES}:00] ",
            clock(phase.elapsed()),
            step.minutes,
            clock(interview.elapsed())
        )
    };
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        if std::io::stdout().is_terminal() {
            let done = &done;
            scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    print!("{}", line());
                    let _ = std::io::stdout().flush();
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        } else {
            print!("{}", line().trim_start_matches('\r'));
            let _ = std::io::stdout().flush();
        }
        let mut input = String::new();
        let read = std::io::stdin().lock().read_line(&mut input);
        done.store(true, Ordering::Relaxed);
        match read {
            Ok(0) => anyhow::bail!("stdin closed: use --all to print every step at once"),
            Ok(_) => Ok(()),
            Err(err) => Err(err.into()),
        }
    })
}

fn clock(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    format!("{}:{:02}", seconds / 60, seconds % 60)
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_shorteners_walkthrough_parses_with_its_phases_in_order() {
        let walkthrough = Walkthrough::parse(URL_SHORTENER).unwrap();

        assert_eq!(walkthrough.system, "url-shortener");
        assert!(!walkthrough.phase[4].claim.is_empty());
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let text = URL_SHORTENER.replacen("minutes = 5", "minutes = 5\nminuets = 5", 1);

        let err = Walkthrough::parse(&text).unwrap_err().to_string();

        assert!(err.contains("minuets"), "{err}");
    }

    #[test]
    fn phases_out_of_order_are_refused() {
        let text = URL_SHORTENER.replacen("kind = \"clarify\"", "kind = \"at-scale\"", 1);

        assert!(Walkthrough::parse(&text).is_err());
    }

    #[test]
    fn every_file_a_claim_names_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let walkthrough = Walkthrough::parse(URL_SHORTENER).unwrap();

        for claim in walkthrough.phase.iter().flat_map(|p| &p.claim) {
            assert!(root.join(&claim.file).is_file(), "{}", claim.file);
        }
        assert!(root.join(&walkthrough.design).is_file());
    }

    #[tokio::test]
    async fn all_prints_every_phase_in_order_with_design_md_estimates_and_every_endpoint() {
        let out = render("url-shortener", &Inputs::default()).await.unwrap();

        let mut at = 0;
        for kind in Kind::ORDER {
            at += out[at..]
                .find(kind.title())
                .unwrap_or_else(|| panic!("{} missing or out of order:\n{out}", kind.title()));
        }
        for estimate in [
            "1,157/s",
            "11,574/s",
            "365,000,000,000",
            "7 base62",
            "80.3 TB",
            "1.5 GB",
        ] {
            assert!(out.contains(estimate), "{estimate} missing:\n{out}");
        }
        let endpoints = shortener::endpoints().await.unwrap();
        assert!(endpoints.len() >= 6, "{endpoints:?}");
        for e in &endpoints {
            let line = format!("{:<7} {:<24}", e.method, e.path);
            assert!(out.contains(&line), "{line} missing:\n{out}");
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

    #[tokio::test]
    async fn a_changed_input_moves_the_printed_estimates() {
        let mut inputs = Inputs::default();
        inputs.set("reads_per_write=100").unwrap();

        let out = render("url-shortener", &inputs).await.unwrap();

        assert!(out.contains("115,741/s average"), "{out}");
        assert!(!out.contains("11,574/s average"), "{out}");
    }

    #[tokio::test]
    async fn a_system_without_a_walkthrough_says_it_is_coming() {
        let err = render("notifier", &Inputs::default()).await.unwrap_err();

        assert!(err.to_string().contains("later increment"), "{err}");
        assert!(list().unwrap().contains("url-shortener"));
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
