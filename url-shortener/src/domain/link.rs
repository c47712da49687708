//! A link and the rules that decide whether it still redirects.

use time::OffsetDateTime;

use super::{code::ShortCode, target::TargetUrl};

/// The API key that owns a link (its database id; the key itself is never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerId(pub i64);

/// A stored link with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub code: ShortCode,
    pub url: String,
    pub owner: OwnerId,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    /// The number of redirects the link allows in total; `None` for no limit.
    pub max_visits: Option<u32>,
    /// Redirects served, bots included.
    pub visits: u64,
    /// Of those, the ones whose User-Agent was a bot's.
    pub bot_visits: u64,
}

/// A link about to be stored.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub code: ShortCode,
    pub url: TargetUrl,
    pub owner: OwnerId,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub max_visits: Option<u32>,
}

impl NewLink {
    pub fn into_link(self) -> Link {
        Link {
            code: self.code,
            url: self.url.as_str().to_owned(),
            owner: self.owner,
            created_at: self.created_at,
            expires_at: self.expires_at,
            max_visits: self.max_visits,
            visits: 0,
            bot_visits: 0,
        }
    }
}

/// Whether a link redirects right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// `expires_at` has passed: the link expires at that instant, not a moment after.
    Expired,
    /// `max_visits` redirects have been served.
    Exhausted,
}

/// The rule on its own, so that a cached copy of a link (which has no counters) uses it too.
pub fn availability(
    expires_at: Option<OffsetDateTime>,
    max_visits: Option<u32>,
    visits: u64,
    now: OffsetDateTime,
) -> Availability {
    if expires_at.is_some_and(|at| now >= at) {
        Availability::Expired
    } else if max_visits.is_some_and(|max| visits >= u64::from(max)) {
        Availability::Exhausted
    } else {
        Availability::Available
    }
}

impl Link {
    pub fn availability(&self, now: OffsetDateTime) -> Availability {
        availability(self.expires_at, self.max_visits, self.visits, now)
    }
}

/// Timestamps are kept in UTC to the millisecond, the precision both databases store exactly,
/// so a link reads back the same from PostgreSQL, from SQLite and from the response that created
/// it, whatever offset the client wrote.
pub fn to_millis(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(at.nanosecond() / 1_000_000 * 1_000_000)
        .expect("a truncated nanosecond is valid")
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    #[test]
    fn a_link_without_limits_is_always_available() {
        assert_eq!(
            availability(None, None, 1_000_000, NOW),
            Availability::Available
        );
    }

    #[test]
    fn a_link_expires_exactly_at_its_expiry_time() {
        let at = datetime!(2026-11-21 12:00:01 UTC);
        let just_before = datetime!(2026-11-21 12:00:00.999 UTC);
        assert_eq!(
            availability(Some(at), None, 0, just_before),
            Availability::Available
        );
        assert_eq!(availability(Some(at), None, 0, at), Availability::Expired);
    }

    #[test]
    fn a_link_is_exhausted_once_its_visits_reach_the_limit() {
        assert_eq!(availability(None, Some(3), 2, NOW), Availability::Available);
        assert_eq!(availability(None, Some(3), 3, NOW), Availability::Exhausted);
    }

    #[test]
    fn expiry_is_reported_before_exhaustion() {
        assert_eq!(
            availability(Some(NOW), Some(1), 1, NOW),
            Availability::Expired
        );
    }

    #[test]
    fn timestamps_are_truncated_to_the_millisecond_in_utc() {
        let at = datetime!(2026-11-21 14:00:00.123_456_789 +02:00);
        let normalised = to_millis(at);
        assert_eq!(normalised, datetime!(2026-11-21 12:00:00.123 UTC));
        assert_eq!(normalised.offset(), time::UtcOffset::UTC);
    }
}
