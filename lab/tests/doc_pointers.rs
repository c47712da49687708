//! Every file a design document names exists.
//!
//! The `DESIGN.md` beside each system is an interview walkthrough that points at the files
//! implementing each decision, and the READMEs point at scripts and docs. A pointer left behind
//! by a move or a rename sends the reader nowhere, so this reads every such document and checks
//! each path it names: markdown link targets, and code spans that look like a path (they hold a
//! `/`, or end in a source or script extension). A path resolves against the document's folder,
//! or the workspace root; a bare name (`worker.rs` named right after its folder, or `domain/`)
//! resolves if a file or folder of that name is in the document's crate. A link out of the
//! repository (to the style guide beside the checkout) is not checked.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// Extensions that make a code span a file pointer even without a `/`.
const EXTENSIONS: [&str; 11] = [
    "rs", "sql", "md", "sh", "js", "toml", "yml", "yaml", "py", "lua", "json",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the lab is inside the workspace")
        .to_owned()
}

/// The documents whose pointers are checked: every `DESIGN.md`, and the Markdown at the root
/// and in `loadtests/`.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut documents = Vec::new();
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.join("DESIGN.md").is_file() {
            documents.push(path.join("DESIGN.md"));
        } else if path.extension().is_some_and(|ext| ext == "md") {
            documents.push(path);
        }
    }
    for entry in fs::read_dir(root.join("loadtests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            documents.push(path);
        }
    }
    documents.sort();
    documents
}

/// The paths a document names: link targets (without their `#fragment`) and path-like code spans.
fn pointers(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split('#').next().unwrap_or_default();
        let external = target.contains("://") || target.starts_with("mailto:");
        if !target.is_empty() && !external {
            found.insert(target.to_owned());
        }
        rest = &after[end..];
    }
    // Code spans are the odd pieces between backticks. One that is a link's text
    // ([`http/redirect.rs`](src/http/redirect.rs)) is a label: the link's target is the pointer.
    let pieces: Vec<&str> = text.split('`').collect();
    for i in (1..pieces.len()).step_by(2) {
        let label = pieces[i - 1].ends_with('[')
            && pieces
                .get(i + 1)
                .is_some_and(|after| after.starts_with("]("));
        if !label && looks_like_a_path(pieces[i]) {
            found.insert(pieces[i].to_owned());
        }
    }
    found
}

fn looks_like_a_path(span: &str) -> bool {
    // Every segment starts with a letter, a digit or `_`: `/v1/users`, `./data/` and
    // `X-Forwarded-For/-Host` are not files of the repository.
    let plain = !span.is_empty()
        && span.split('/').enumerate().all(|(i, segment)| {
            (segment.is_empty() && i > 0 && span.ends_with('/'))
                || segment.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
        && span
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b));
    let extension = span.rsplit_once('.').map(|(_, ext)| ext);
    plain && (span.contains('/') || extension.is_some_and(|ext| EXTENSIONS.contains(&ext)))
}

/// The crate a document belongs to: its folder, or the root for the root's documents.
fn crate_of<'a>(document: &'a Path, root: &'a Path) -> &'a Path {
    let folder = document.parent().unwrap();
    if folder.join("Cargo.toml").is_file() {
        folder
    } else {
        root
    }
}

fn file_named(folder: &Path, name: &str) -> bool {
    let Ok(entries) = fs::read_dir(folder) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        let skipped = path.ends_with("target") || path.ends_with(".git");
        !skipped && (entry.file_name() == name || (path.is_dir() && file_named(&path, name)))
    })
}

/// Whether `pointer`, from `document`, leads out of the repository (the README's link to the
/// style guide beside the checkout): not this repository's to check.
fn leaves_the_repository(pointer: &str, document: &Path, root: &Path) -> bool {
    let mut depth = document
        .parent()
        .unwrap()
        .strip_prefix(root)
        .unwrap()
        .components()
        .count();
    for segment in pointer.split('/') {
        match segment {
            ".." if depth == 0 => return true,
            ".." => depth -= 1,
            "." | "" => {}
            _ => depth += 1,
        }
    }
    false
}

fn resolves(pointer: &str, document: &Path, root: &Path) -> bool {
    let folder = document.parent().unwrap();
    leaves_the_repository(pointer, document, root)
        || folder.join(pointer).exists()
        || root.join(pointer).exists()
        || bare_name(pointer).is_some_and(|name| file_named(crate_of(document, root), name))
}

/// `worker.rs` or `domain/`: a name without its folder.
fn bare_name(pointer: &str) -> Option<&str> {
    let name = pointer.strip_suffix('/').unwrap_or(pointer);
    (!name.contains('/')).then_some(name)
}

#[test]
fn every_file_a_design_document_names_exists() {
    let root = workspace();
    let mut missing = Vec::new();
    let documents = documents(&root);
    assert!(
        documents.len() >= 7,
        "expected five DESIGN.md files and the READMEs, found {documents:?}"
    );
    for document in &documents {
        let text = fs::read_to_string(document).unwrap();
        for pointer in pointers(&text) {
            if !resolves(&pointer, document, &root) {
                let shown = document.strip_prefix(&root).unwrap().display();
                missing.push(format!("{shown}: {pointer}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "pointers to files that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn links_and_path_like_code_spans_are_pointers_and_other_spans_are_not() {
    let text = "See [the store](src/store/mod.rs#L10), `src/http/`, `worker.rs`, \
                [`http/redirect.rs`](src/http/redirect.rs) and [docs](https://example.com); \
                not `feed.posts`, `/v1/users/{id}`, `./data/`, `X-Forwarded-For/-Host`, \
                `a b.rs` or `receipts::payer`.";

    let found = pointers(text);

    let expected = [
        "src/http/",
        "src/http/redirect.rs",
        "src/store/mod.rs",
        "worker.rs",
    ];
    assert_eq!(found, expected.map(str::to_owned).into());
}
