//! What each system's `src/settings.rs` says about the environment it reads, for the lab's tests.
//!
//! Every settings file opens with a table, `| variable | default | meaning |`, one row per
//! variable. A variable whose default is a socket address (`127.0.0.1:8081`) is an address the
//! system listens on. Reading the tables, rather than a list kept here, is what makes a new
//! listener show up in every test that uses this module (the compose file's, the data
//! directory's) without anyone remembering to add it; `compose.rs` checks that the tables name
//! every address the code reads.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// An address a system listens on, named by an environment variable.
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "each test crate reads the fields it needs: not all of them"
)]
pub struct Listener {
    /// The crate whose settings name it (`notifier`).
    pub system: String,
    pub variable: String,
    pub default: SocketAddr,
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the lab is inside the workspace")
        .to_owned()
}

/// Each system's name and the text of its `src/settings.rs`: every crate at the top of the
/// workspace that has one.
pub fn settings_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for entry in fs::read_dir(workspace()).unwrap() {
        let dir = entry.unwrap().path();
        let settings = dir.join("src/settings.rs");
        if dir.join("Cargo.toml").is_file() && settings.is_file() {
            let system = dir.file_name().unwrap().to_string_lossy().into_owned();
            files.push((system, fs::read_to_string(settings).unwrap()));
        }
    }
    assert!(
        files.len() >= 5,
        "expected the five systems' settings, found {files:?}"
    );
    files.sort();
    files
}

/// Every listener every system's settings table names.
pub fn listeners() -> Vec<Listener> {
    let mut listeners = Vec::new();
    for (system, text) in settings_files() {
        let found = listeners_in(&text);
        // Every system serves an API, so a table that yields nothing was not read: its format
        // changed, and the tests that use this would pass without checking anything.
        assert!(
            !found.is_empty(),
            "no address in the table of {system}/src/settings.rs"
        );
        listeners.extend(found.into_iter().map(|(variable, default)| Listener {
            system: system.clone(),
            variable,
            default,
        }));
    }
    listeners
}

/// The rows of a settings table whose one variable defaults to one socket address. A row that
/// names several variables (`NOTIFIER_THROTTLE_LIMIT`, `NOTIFIER_THROTTLE_WINDOW`) or a default
/// that is more than an address (an origin built from one) is not a listener.
fn listeners_in(settings: &str) -> Vec<(String, SocketAddr)> {
    settings
        .lines()
        .filter_map(|line| line.strip_prefix("//! |"))
        .filter_map(|row| {
            let mut cells = row.split('|').map(str::trim);
            let variable = code_span(cells.next()?)?;
            let default = code_span(cells.next()?)?.parse().ok()?;
            Some((variable.to_owned(), default))
        })
        .collect()
}

/// The text of `cell` if the cell is one code span and nothing else.
fn code_span(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}
