//! Posts: what an author may write, and a post as every reader sees it.

use time::OffsetDateTime;

use super::{Handle, Invalid, PostId, UserId};

/// A post's text, checked: 1 to 280 characters, counted as Unicode scalar values (Rust `char`s)
/// and as sent: nothing is trimmed, so what the author wrote is what is stored and shown.
///
/// Scalar values, not bytes (an emoji is four bytes of UTF-8 and one character here) and not
/// grapheme clusters (a family emoji joined with zero-width joiners is one glyph and five
/// characters here): the count is stable across Unicode versions and needs no tables. Twitter
/// weighs characters instead: outside Latin and punctuation a code point counts as two, and an
/// emoji sequence as two however long (developer.x.com, "Counting characters"); a product choice,
/// and one that would replace [`PostText::parse`] alone.
///
/// Control characters other than line breaks and tabs are refused: they render as nothing or
/// garble a terminal, and PostgreSQL cannot store U+0000 in `text` at all, which would otherwise
/// turn a bad post into a 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostText(String);

impl PostText {
    pub const MAX_CHARS: usize = 280;

    pub fn parse(text: String) -> Result<Self, Invalid> {
        let invalid = |reason: &str| Invalid::new("text", reason);
        let chars = text.chars().count();
        if chars == 0 {
            return Err(invalid("must not be empty"));
        }
        if chars > Self::MAX_CHARS {
            return Err(invalid(&format!(
                "must be at most 280 characters; this is {chars}"
            )));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(invalid(
                "must not contain control characters other than line breaks and tabs",
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A live post as every reader sees it, in a feed or alone, with its author's handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Time-ordered: a newer post has a greater id.
    pub id: PostId,
    pub author: UserId,
    pub author_handle: Handle,
    pub text: String,
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_1_to_280_characters_is_accepted_as_sent() {
        for text in ["x", "  spaced  ", "line one\nline two", &"x".repeat(280)] {
            assert_eq!(PostText::parse(text.to_owned()).unwrap().as_str(), text);
        }
    }

    #[test]
    fn empty_text_and_text_over_280_characters_are_refused() {
        for text in [String::new(), "x".repeat(281)] {
            assert_eq!(PostText::parse(text).unwrap_err().field, "text");
        }
    }

    #[test]
    fn characters_are_counted_not_bytes() {
        let crabs = "🦀".repeat(280);
        assert_eq!(crabs.len(), 4 * 280);

        assert!(PostText::parse(crabs).is_ok());
        assert!(PostText::parse("🦀".repeat(281)).is_err());
    }

    #[test]
    fn control_characters_other_than_line_breaks_and_tabs_are_refused() {
        for text in ["nul\0", "bell\u{7}", "escape\u{1b}[2J"] {
            assert!(PostText::parse(text.to_owned()).is_err(), "{text:?}");
        }
        assert!(PostText::parse("tab\tcr\r\nlf".to_owned()).is_ok());
    }
}
