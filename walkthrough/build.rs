//! Compiles in every source file a walkthrough's claim names (`file = "…"` in each system's
//! WALKTHROUGH.toml), so the console can show the file that implements a claim wherever it runs,
//! a container without the workspace included: `$OUT_DIR/sources.rs` holds `SOURCES`, each path
//! from the workspace root beside its text.

use std::{collections::BTreeSet, env, fmt::Write as _, fs, path::PathBuf};

const SYSTEMS: [&str; 5] = [
    "url-shortener",
    "rate-limiter",
    "idempotency-demo",
    "notifier",
    "feed-service",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.parent().expect("the crate is in the workspace");
    let mut files = BTreeSet::new();
    for system in SYSTEMS {
        // The directory too, so that a walkthrough added later is seen.
        println!("cargo::rerun-if-changed={}", root.join(system).display());
        let path = root.join(system).join("WALKTHROUGH.toml");
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        println!("cargo::rerun-if-changed={}", path.display());
        for line in text.lines() {
            if let Some(file) = line.trim().strip_prefix("file = \"") {
                files.insert(file.trim_end_matches('"').to_owned());
            }
        }
    }
    let mut out = String::from("pub static SOURCES: &[(&str, &str)] = &[\n");
    for file in files {
        let path = root.join(&file);
        if path.is_file() {
            let _ = writeln!(out, "    ({file:?}, include_str!({:?})),", path.display());
        }
    }
    out.push_str("];\n");
    let generated = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it")).join("sources.rs");
    fs::write(generated, out).expect("OUT_DIR is writable");
}
