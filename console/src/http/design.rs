//! Each system's DESIGN.md, compiled in and rendered to HTML for its page: the console watches a
//! system over HTTP, but a system does not serve its design doc, and the docs are what a
//! newcomer reads beside the charts. A system the workspace does not have gets no doc.

use pulldown_cmark::{Options, Parser, html};

const DESIGNS: &[(&str, &str)] = &[
    (
        "url-shortener",
        include_str!("../../../url-shortener/DESIGN.md"),
    ),
    (
        "rate-limiter",
        include_str!("../../../rate-limiter/DESIGN.md"),
    ),
    (
        "idempotency-demo",
        include_str!("../../../idempotency-demo/DESIGN.md"),
    ),
    ("notifier", include_str!("../../../notifier/DESIGN.md")),
    (
        "feed-service",
        include_str!("../../../feed-service/DESIGN.md"),
    ),
];

/// `system`'s design doc as HTML (tables and footnotes as GitHub renders them), and its first
/// paragraph as plain text, for the page's lede.
pub fn design(system: &str) -> Option<Design> {
    let (_, markdown) = DESIGNS.iter().find(|(name, _)| *name == system)?;
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH;
    let mut rendered = String::new();
    html::push_html(&mut rendered, Parser::new_ext(markdown, options));
    Some(Design {
        html: rendered,
        summary: first_paragraph(markdown),
    })
}

#[derive(Debug, serde::Serialize)]
pub struct Design {
    pub html: String,
    pub summary: String,
}

/// The first paragraph that is not a heading, with its line breaks joined and its code and
/// emphasis marks dropped.
fn first_paragraph(markdown: &str) -> String {
    let text = markdown
        .split("\n\n")
        .map(str::trim)
        .find(|block| !block.is_empty() && !block.starts_with('#'))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    text.replace(['`', '*'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_of_the_workspace_has_its_design_rendered() {
        for (system, _) in DESIGNS {
            let design = design(system).unwrap();
            assert!(design.html.contains("<h1>"), "{system}");
            assert!(design.html.contains("<table>"), "{system}: tables render");
            assert!(!design.summary.is_empty(), "{system}");
        }
        assert!(design("someone-elses").is_none());
    }
}
