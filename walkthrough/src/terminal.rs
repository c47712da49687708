//! The walkthrough in a terminal: `sdlab walkthrough [<system>] [--all | --practice | --demo
//! <id> [--json]] [--set name=value]`, the lab's subcommand (and the console binary's, which runs
//! each demonstration its page asks for as `walkthrough <system> --demo <id> --json`: see
//! [`crate::view::Demos`]).

use std::{
    io::{BufRead, IsTerminal, Write as _},
    time::{Duration, Instant},
};

use crate::{
    INTERVIEW_MINUTES, Part, Subject, banner, demonstrate, estimate::Inputs, list, render,
    render_shown, stage::Stage, steps, subject, view::Demonstration,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The system to walk through; without it, the systems that have a walkthrough.
    system: Option<String>,
    /// Print every step, and run every live demonstration, at once instead of waiting for Enter.
    #[arg(long, conflicts_with = "practice")]
    all: bool,
    /// Show each phase's question and a timer; the answer and its checklist when you press Enter.
    #[arg(long)]
    practice: bool,
    /// Change an estimate's input, e.g. `--set links_per_day=200000000` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Run one deep dive's live demonstration only, by its id (`demo` in WALKTHROUGH.toml).
    #[arg(long, value_name = "ID", conflicts_with_all = ["all", "practice"])]
    demo: Option<String>,
    /// With --demo: print what it showed as JSON, for the console.
    #[arg(long, requires = "demo")]
    json: bool,
}

/// `<binary> walkthrough …` for a binary with no other subcommand (the console's, which runs its
/// page's demonstrations so): the arguments, if the command line starts with `walkthrough`.
pub fn from_command_line() -> Option<Args> {
    #[derive(clap::Parser)]
    #[command(name = "walkthrough")]
    struct Command {
        #[command(flatten)]
        args: Args,
    }
    let mut argv = std::env::args_os().skip(1);
    let first = argv.next()?;
    (first == "walkthrough")
        .then(|| <Command as clap::Parser>::parse_from(std::iter::once(first).chain(argv)).args)
}

/// Runs `sdlab walkthrough …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let Some(system) = args.system else {
        print!("{}", list()?);
        return Ok(());
    };
    let subject = subject(&system)?;
    let mut inputs = subject.inputs();
    for assignment in &args.set {
        inputs.set(assignment).map_err(anyhow::Error::msg)?;
    }
    if args.all {
        let rendered = render(subject, &inputs).await?;
        print!("{}", rendered.text);
        anyhow::ensure!(
            rendered.broken.is_empty(),
            "{} claim(s) did not hold: {}",
            rendered.broken.len(),
            rendered.broken.join("; ")
        );
        return Ok(());
    }
    if let Some(demo) = args.demo {
        return demo_only(subject, &demo, args.json).await;
    }
    println!("Starting {system} for the live parts...");
    let mut stage = subject.stage().await?;
    let result = step_through(subject, &inputs, stage.as_mut(), args.practice).await;
    stage.stop().await?;
    result
}

/// `--demo <id>`: starts the system, runs one demonstration, stops it.
async fn demo_only(subject: &dyn Subject, demo: &str, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        subject.demos().contains(&demo),
        "no demonstration is called {demo:?}; there are {}",
        subject.demos().join(", ")
    );
    let mut stage = subject.stage().await?;
    let shown = demonstrate(stage.as_mut(), demo).await;
    let shown = Demonstration {
        on: format!("{}: {}", stage.url(), stage.backends()),
        lines: shown.lines,
        broken: shown.broken,
    };
    stage.stop().await?;
    if json {
        println!("{}", serde_json::to_string(&shown)?);
    } else {
        print!("{}", render_shown(&shown.lines));
    }
    anyhow::ensure!(
        shown.broken.is_empty(),
        "the claim did not hold: {}",
        shown.broken.join("; ")
    );
    Ok(())
}

/// Step by step: each phase's question, a running timer until Enter, then its answer (at once,
/// or after a second Enter in practice mode, so the user answers before reading ours), each
/// demonstration run when the user asks for it.
async fn step_through(
    subject: &dyn Subject,
    inputs: &Inputs,
    stage: &mut dyn Stage,
    practice: bool,
) -> anyhow::Result<()> {
    let (title, steps) = steps(subject, inputs, stage).await?;
    let interview = Instant::now();
    println!("{title}");
    for step in &steps {
        let phase = Instant::now();
        println!("\n{}\n{}", banner(step), step.question);
        let timer = Timer {
            minutes: step.minutes,
            phase,
            interview,
        };
        if practice {
            timer.wait_for_enter("Answer aloud; Enter shows ours.")?;
        }
        println!();
        for part in &step.answer {
            match part {
                Part::Text(text) => print!("{text}"),
                Part::Demo(demo) => {
                    timer.wait_for_enter("Enter runs the live demonstration.")?;
                    print!("{}", render_shown(&demonstrate(stage, demo).await.lines));
                }
            }
        }
        timer.wait_for_enter("Enter goes on.")?;
    }
    println!(
        "\nDone in {} of {INTERVIEW_MINUTES}:00.",
        clock(interview.elapsed())
    );
    Ok(())
}

/// A phase's clock, shown while the walkthrough waits for Enter.
struct Timer {
    minutes: u32,
    phase: Instant,
    interview: Instant,
}

impl Timer {
    /// Waits for Enter, redrawing `prompt` with the phase's and the interview's time every
    /// quarter second when stdout is a terminal (once otherwise, so a pipe gets no carriage
    /// returns). The redraw and the Enter take one lock, so no redraw lands after the Enter.
    fn wait_for_enter(&self, prompt: &str) -> anyhow::Result<()> {
        let line = || {
            format!(
                "\r{prompt} [this phase {} of {}:00, interview {} of {INTERVIEW_MINUTES}:00] ",
                clock(self.phase.elapsed()),
                self.minutes,
                clock(self.interview.elapsed())
            )
        };
        let done = std::sync::Mutex::new(false);
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                if std::io::stdout().is_terminal() {
                    let done = &done;
                    let line = &line;
                    scope.spawn(move || {
                        loop {
                            {
                                let done = done.lock().unwrap_or_else(|e| e.into_inner());
                                if *done {
                                    break;
                                }
                                print!("{}", line());
                                let _ = std::io::stdout().flush();
                            }
                            std::thread::sleep(Duration::from_millis(250));
                        }
                    });
                } else {
                    print!("{}", line().trim_start_matches('\r'));
                    let _ = std::io::stdout().flush();
                }
                let mut input = String::new();
                let read = std::io::stdin().lock().read_line(&mut input);
                *done.lock().unwrap_or_else(|e| e.into_inner()) = true;
                // A terminal echoes the Enter; a pipe does not, so the line is ended here.
                if !std::io::stdin().is_terminal() {
                    println!();
                }
                match read {
                    Ok(0) => anyhow::bail!("stdin closed: use --all to print every step at once"),
                    Ok(_) => Ok(()),
                    Err(err) => Err(err.into()),
                }
            })
        })
    }
}

fn clock(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    format!("{}:{:02}", seconds / 60, seconds % 60)
}
