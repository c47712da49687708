//! The shortener's use cases, free of HTTP: issue a key, create, resolve, read and delete links.
//!
//! [`Shortener`] owns the collaborators (store, cache, code generator, visit recorder, clock) and
//! is what the HTTP handlers and the lab call. It parses raw input into domain types on the way
//! in, so everything below it works with values that are already valid.

use std::{sync::Arc, time::Duration};

use platform::{auth::ApiKey, clock::Clock};
use time::OffsetDateTime;
use url::Url;

use crate::{
    cache::{CachedLink, LinkCache, Lookup},
    domain::{Availability, Link, NewLink, OwnerId, ShortCode, link},
    error::ShortenerError,
    ids::CodeGenerator,
    store::{FaultyKeys, LinkStore, StoreError},
    targets::Targets,
    visits::VisitRecorder,
};

/// How many times creation moves on to the next generated code when the one it drew is held by
/// a custom alias. Each retry needs an alias to have taken exactly that code, so one is plenty;
/// the bound only stops a broken store from looping forever.
const GENERATED_CODE_ATTEMPTS: usize = 5;

/// A request to shorten a URL, as received.
#[derive(Debug, Clone, Default)]
pub struct CreateLink {
    pub url: String,
    pub alias: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub max_visits: Option<u32>,
}

/// An API key as the shortener shows it: the owner its links belong to, a name and when it was
/// created. The key itself is shown once, when issued, and never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: OwnerId,
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// Where a redirect goes, and what the response may promise about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub url: String,
    /// Time left until the link expires, measured with the same clock reading that found it
    /// available; `None` if it never expires.
    pub expires_in: Option<Duration>,
    /// Counted against `max_visits`: a cache must not answer for the next visit.
    pub limited: bool,
}

pub struct Shortener {
    store: Arc<dyn LinkStore>,
    keys: FaultyKeys,
    cache: LinkCache,
    codes: CodeGenerator,
    visits: Arc<VisitRecorder>,
    clock: Arc<dyn Clock>,
    base_url: Url,
    /// Checks target URLs, refusing those that lead back here.
    targets: Targets,
}

impl Shortener {
    pub fn new(
        store: Arc<dyn LinkStore>,
        keys: FaultyKeys,
        cache: LinkCache,
        codes: CodeGenerator,
        clock: Arc<dyn Clock>,
        base_url: Url,
        targets: Targets,
    ) -> Self {
        let visits = Arc::new(VisitRecorder::new(store.clone()));
        Self {
            store,
            keys,
            cache,
            codes,
            visits,
            clock,
            base_url,
            targets,
        }
    }

    pub fn visits(&self) -> &Arc<VisitRecorder> {
        &self.visits
    }

    /// The public URL of a code.
    pub fn short_url(&self, code: &ShortCode) -> String {
        let mut url = self.base_url.clone();
        url.set_path(code.as_str());
        url.into()
    }

    // Failures are traced at debug: they are the client's 4xx. A 500 is logged, with its cause
    // chain, where it becomes a response (`Problem::internal`).

    /// Creates an API key. The key is returned once and only its hash is kept.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn issue_api_key(
        &self,
        name: &str,
    ) -> Result<(ApiKey, ApiKeyRecord), ShortenerError> {
        if name.chars().count() > 100 || name.trim().is_empty() {
            return Err(ShortenerError::invalid(
                "name",
                "must be 1 to 100 characters, not all spaces",
            ));
        }
        let name = name.trim();
        let (key, record) = self.keys.issue(name, self.now()).await?;
        let record = ApiKeyRecord {
            id: OwnerId(record.id),
            name: record.name,
            created_at: record.created_at,
        };
        Ok((key, record))
    }

    /// The owner of an API key, or [`ShortenerError::UnknownKey`].
    pub async fn authenticate(&self, key: &ApiKey) -> Result<OwnerId, ShortenerError> {
        self.keys
            .find(key)
            .await?
            .map(|record| OwnerId(record.id))
            .ok_or(ShortenerError::UnknownKey)
    }

    #[tracing::instrument(skip(self, request), fields(alias = request.alias.as_deref()), err(level = "debug"))]
    pub async fn create(
        &self,
        owner: OwnerId,
        request: CreateLink,
    ) -> Result<Link, ShortenerError> {
        let now = self.now();
        let url = self
            .targets
            .parse(&request.url)
            .await
            .map_err(|err| ShortenerError::invalid("url", err))?;
        let alias = request
            .alias
            .as_deref()
            .map(ShortCode::parse_alias)
            .transpose()
            .map_err(|err| ShortenerError::invalid("alias", err))?;
        let expires_at = request.expires_at.map(link::to_millis);
        if expires_at.is_some_and(|at| at <= now) {
            return Err(ShortenerError::invalid(
                "expires_at",
                "must be in the future",
            ));
        }
        if request.max_visits == Some(0) {
            return Err(ShortenerError::invalid("max_visits", "must be at least 1"));
        }

        let mut new_link = NewLink {
            code: match &alias {
                Some(alias) => alias.clone(),
                None => self.codes.next_code().await?,
            },
            url,
            owner,
            created_at: now,
            expires_at,
            max_visits: request.max_visits,
        };
        let mut attempts = 1;
        loop {
            match self.store.insert_link(&new_link).await {
                Ok(()) => break,
                Err(StoreError::CodeTaken) if alias.is_some() => {
                    return Err(ShortenerError::AliasTaken(new_link.code.to_string()));
                }
                Err(StoreError::CodeTaken) if attempts < GENERATED_CODE_ATTEMPTS => {
                    tracing::info!(code = %new_link.code, "generated code held by an alias; drawing another");
                    new_link.code = self.codes.next_code().await?;
                    attempts += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
        let link = new_link.into_link();
        // Written through: replaces any "absent" an earlier request for this code left.
        self.cache.store(&link, now).await;
        Ok(link)
    }

    /// Where `code` redirects, counting the visit. Unknown, expired and exhausted codes are
    /// all [`ShortenerError::NotFound`].
    pub async fn resolve(&self, code: &str, is_bot: bool) -> Result<Destination, ShortenerError> {
        self.find_destination(code, Some(is_bot)).await
    }

    /// Where `code` would redirect, without counting a visit (for `HEAD`).
    pub async fn peek(&self, code: &str) -> Result<Destination, ShortenerError> {
        self.find_destination(code, None).await
    }

    async fn find_destination(
        &self,
        code: &str,
        visit: Option<bool>,
    ) -> Result<Destination, ShortenerError> {
        let code = ShortCode::parse(code).ok_or(ShortenerError::NotFound)?;
        let now = self.now();
        let cached = match self.cache.lookup(&code).await {
            Lookup::Link(cached) => cached,
            Lookup::Absent => return Err(ShortenerError::NotFound),
            Lookup::Miss => match self.store.find_link(&code).await? {
                Some(link) if link.availability(now) == Availability::Available => {
                    self.cache.fill(&link, now).await;
                    CachedLink::from(&link)
                }
                Some(_) => {
                    self.cache.mark_gone(&code).await;
                    return Err(ShortenerError::NotFound);
                }
                None => {
                    self.cache.fill_absent(&code).await;
                    return Err(ShortenerError::NotFound);
                }
            },
        };

        // The cache holds no counters, so only expiry can be judged from it.
        if link::availability(cached.expires_at, None, 0, now) == Availability::Expired {
            self.cache.mark_gone(&code).await;
            return Err(ShortenerError::NotFound);
        }
        let limited = cached.max_visits.is_some();
        match visit {
            Some(is_bot) if limited => {
                if !self.store.consume_visit(&code, now).await? {
                    self.cache.mark_gone(&code).await;
                    return Err(ShortenerError::NotFound);
                }
                self.visits.record(&code, is_bot, true);
            }
            Some(is_bot) => self.visits.record(&code, is_bot, false),
            // A HEAD of a limited link asks the database, which holds the count.
            None if limited => {
                let available = self
                    .store
                    .find_link(&code)
                    .await?
                    .is_some_and(|link| link.availability(now) == Availability::Available);
                if !available {
                    return Err(ShortenerError::NotFound);
                }
            }
            None => {}
        }
        Ok(Destination {
            url: cached.url,
            expires_in: cached
                .expires_at
                .map(|at| Duration::try_from(at - now).unwrap_or_default()),
            limited,
        })
    }

    /// A link with its visit counts, for its owner only. Counts include visits tallied on this
    /// instance and not yet flushed.
    pub async fn link(&self, owner: OwnerId, code: &str) -> Result<Link, ShortenerError> {
        let mut link = self.owned_link(owner, code).await?;
        let pending = self.visits.pending(&link.code);
        link.visits += pending.visits;
        link.bot_visits += pending.bot_visits;
        Ok(link)
    }

    /// Deletes a link, for its owner only. Its code is never handed out again.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn delete(&self, owner: OwnerId, code: &str) -> Result<(), ShortenerError> {
        let link = self.owned_link(owner, code).await?;
        if !self.store.delete_link(&link.code, self.now()).await? {
            return Err(ShortenerError::NotFound);
        }
        // Not a removal: a marker, so that a redirect which read the link just before the
        // delete cannot put it back in the cache.
        self.cache.mark_gone(&link.code).await;
        Ok(())
    }

    async fn owned_link(&self, owner: OwnerId, code: &str) -> Result<Link, ShortenerError> {
        let code = ShortCode::parse(code).ok_or(ShortenerError::NotFound)?;
        let link = self
            .store
            .find_link(&code)
            .await?
            .ok_or(ShortenerError::NotFound)?;
        if link.owner != owner {
            return Err(ShortenerError::NotOwner);
        }
        Ok(link)
    }

    /// The current time, to the millisecond (see `link::to_millis`).
    fn now(&self) -> OffsetDateTime {
        link::to_millis(self.clock.now())
    }
}
