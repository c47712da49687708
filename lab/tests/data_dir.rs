//! A second process on a data directory in use is refused, with a message that says which
//! directory, which process has it, and what to do.
//!
//! The lab binary itself is started, twice, as a user would start it: what is checked is what
//! the user reads. Both run on the embedded backends whatever the environment says, since those
//! are what the data directory holds; with `DATABASE_URL`, `REDIS_URL` and `KAFKA_BROKERS` set,
//! nothing is kept there for two processes to share.

mod settings;

use std::{
    fs::{self, File},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// How long a start may take before the test gives up on a hang: generous, since the debug
/// build runs on a busy machine. Nothing is asserted about how long anything takes.
const HANG_GUARD: Duration = Duration::from_secs(180);

/// `sdlab` on `data_dir`, on the embedded backends, every listener on a free port so that two
/// can run side by side.
fn sdlab(data_dir: &Path, stderr: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdlab"));
    command
        .env("SDLAB_DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("KAFKA_BROKERS")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(stderr).unwrap());
    for listener in settings::listeners() {
        command.env(&listener.variable, "127.0.0.1:0");
    }
    command
}

/// A started lab, stopped when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sdlab` and returns once it says it is running.
fn start(mut command: Command, stderr: &Path) -> Running {
    let mut child = command.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (ready, is_ready) = mpsc::channel();
    // Reads to the end, so that the lab never blocks on a full pipe.
    thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if line.contains("sdlab is running") {
                let _ = ready.send(());
            }
        }
    });
    let running = Running(child);
    if is_ready.recv_timeout(HANG_GUARD).is_err() {
        panic!(
            "the first sdlab did not start:\n{}",
            fs::read_to_string(stderr).unwrap()
        );
    }
    running
}

/// Waits for `child` to exit, killing it if it hangs.
fn exit_status(child: &mut Child) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > HANG_GUARD {
            child.kill().unwrap();
            panic!("the second sdlab neither failed nor stopped");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A new, empty directory for this test run, under the target directory Cargo gives
/// integration tests.
fn new_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_second_lab_on_a_data_directory_in_use_names_it_its_holder_and_what_to_do() {
    let dir = new_dir("data-dir-in-use");
    let data_dir = dir.join("data");
    let (first_log, second_log) = (dir.join("first.log"), dir.join("second.log"));
    let first = start(sdlab(&data_dir, &first_log), &first_log);

    let mut second = Running(sdlab(&data_dir, &second_log).spawn().unwrap());
    let status = exit_status(&mut second.0);

    let stderr = fs::read_to_string(&second_log).unwrap();
    assert!(!status.success(), "the second sdlab started:\n{stderr}");
    let data_dir = std::path::absolute(&data_dir).unwrap();
    for said in [
        format!("the data directory {} is in use", data_dir.display()),
        format!("process {} (sdlab)", first.0.id()),
        "Stop that process".to_owned(),
        "set SDLAB_DATA_DIR to another directory".to_owned(),
    ] {
        assert!(stderr.contains(&said), "{said:?} is not in:\n{stderr}");
    }
    drop((first, second));
    fs::remove_dir_all(dir).unwrap();
}
