//! Telling bots from people by User-Agent, so visit counts mean something.
//!
//! Most bot traffic on a short link is link previews: a chat app or social network fetches the
//! link the moment it is pasted, to draw a card. Counting those as visits would inflate every
//! link's numbers, so they are counted separately (`bot_visits`) rather than dropped: the owner
//! still sees them. Redirects are served to bots as to anyone.
//!
//! The list is substrings that real crawlers and preview fetchers send (checked
//! case-insensitively in one pass with Aho-Corasick). It is a heuristic, as every User-Agent
//! check is: a bot that claims to be a browser is counted as a person. Command-line clients
//! (`curl`, `wget`, HTTP libraries) are counted as bots too: they are scripts, not readers.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

const BOT_MARKERS: &[&str] = &[
    // Generic words crawlers put in their names.
    "bot",
    "crawl",
    "spider",
    "slurp",
    "preview",
    "scanner",
    "monitor",
    "headless",
    // Link-preview fetchers that do not say "bot".
    "facebookexternalhit",
    "whatsapp",
    "embedly",
    "vkshare",
    "skypeuripreview",
    "bitlyurlexpander",
    // Scripts and libraries.
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww-perl",
    "httpclient",
    "axios/",
    "node-fetch",
    "k6/",
];

static MATCHER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(BOT_MARKERS)
        .expect("the bot markers are valid patterns")
});

/// Whether a request with this User-Agent (if any) comes from a bot. A missing User-Agent is a
/// script that did not bother to set one.
pub fn is_bot(user_agent: Option<&str>) -> bool {
    match user_agent {
        Some(agent) if !agent.trim().is_empty() => MATCHER.is_match(agent),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_people() {
        for agent in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ] {
            assert!(!is_bot(Some(agent)), "{agent}");
        }
    }

    #[test]
    fn crawlers_and_preview_fetchers_are_bots() {
        for agent in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "WhatsApp/2.23.20.0",
            "Twitterbot/1.0",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        ] {
            assert!(is_bot(Some(agent)), "{agent}");
        }
    }

    #[test]
    fn scripts_and_requests_without_a_user_agent_are_bots() {
        assert!(is_bot(Some("curl/8.5.0")));
        assert!(is_bot(Some("python-requests/2.32.3")));
        assert!(is_bot(None));
        assert!(is_bot(Some("  ")));
    }
}
