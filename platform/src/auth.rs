//! Bearer API keys: how a client proves which account it acts for.
//!
//! A key is 160 random bits, shown to its owner once (`sk_` followed by 40 hex digits) and stored
//! only as its SHA-256. A plain, fast hash is the right tool here, unlike for passwords: the key
//! is random and long, so there is nothing for a slow hash (argon2, bcrypt) to protect against,
//! and hashing it on every request must stay cheap. A leaked table of hashes cannot be turned back
//! into keys.
//!
//! Clients send `Authorization: Bearer sk_…` (RFC 6750). The [`BearerKey`] extractor answers a
//! missing or malformed header with a 401 problem and `WWW-Authenticate: Bearer`; whether the key
//! belongs to anyone is the system's question, asked of its own table through [`ApiKeys`].
//!
//! [`ApiKeys`] is how every system stores its keys: one row a key, its hash, a name and the time
//! it was created, on either engine. The table is the system's own (the shortener's `api_keys`,
//! the payments service's `clients`), created by its own migrations and referenced by its own
//! rows (links, payments); only the statements that write and read it are shared.

use std::fmt;

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{
    config::{ConfigError, env_opt},
    db::{Database, from_unix_millis, unix_millis},
    problem::Problem,
};

const PREFIX: &str = "sk_";
const RANDOM_BYTES: usize = 20;

/// A secret API key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A new random key.
    pub fn generate() -> Self {
        let bytes: [u8; RANDOM_BYTES] = rand::random();
        Self(format!("{PREFIX}{}", hex::encode(bytes)))
    }

    /// Accepts anything shaped like a key; whether it exists is for the store to say.
    pub fn parse(value: &str) -> Option<Self> {
        let digits = value.strip_prefix(PREFIX)?;
        let well_formed = digits.len() == RANDOM_BYTES * 2
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Self(value.to_owned()))
    }

    /// The secret itself, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks keys up by: the SHA-256 of the key, in hex.
    pub fn hash(&self) -> String {
        hex::encode(self.digest())
    }

    /// The SHA-256 of the key, as bytes: for a lookup in memory on every request, where the hex
    /// form would cost an allocation and a hash of twice the length.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// Reads the API key in the variable `name` (one the operator registers at start, such as
/// `PAYMENTS_DEMO_KEY`); unset or empty means `None`. A malformed key is refused without being
/// echoed: it is a secret even when it is wrong.
pub fn env_key(name: &str) -> Result<Option<ApiKey>, ConfigError> {
    let Some(text) = env_opt::<String>(name)? else {
        return Ok(None);
    };
    ApiKey::parse(&text).map(Some).ok_or_else(|| ConfigError {
        name: name.into(),
        value: "(hidden)".into(),
        reason: format!(
            "expected {PREFIX} followed by {} lower-case hex digits",
            RANDOM_BYTES * 2
        ),
    })
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(sk_…)")
    }
}

/// A system's table of API keys. It must have these columns, as the systems' migrations create
/// them:
///
/// | column | PostgreSQL | SQLite |
/// |---|---|---|
/// | `id` | `BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY` | `INTEGER PRIMARY KEY` |
/// | `name` | `TEXT NOT NULL` | `TEXT NOT NULL` |
/// | `key_hash` | `TEXT NOT NULL UNIQUE` ([`ApiKey::hash`]) | `TEXT NOT NULL UNIQUE` |
/// | `created_at` | `TIMESTAMPTZ NOT NULL` | `INTEGER NOT NULL` (milliseconds) |
///
/// A key is found by its hash through the unique index: one indexed read per authenticated
/// request.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    database: Database,
    table: &'static str,
}

/// A stored key: the row's id (what the system's other rows refer to), its name and when it was
/// created. The key itself is not in it: it is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub name: String,
    pub created_at: OffsetDateTime,
}

impl ApiKeys {
    /// The keys kept in `table`, in the schema `database` is connected to.
    ///
    /// # Panics
    /// If `table` is not a plain lower-case identifier: it is written into the statements.
    pub fn new(database: Database, table: &'static str) -> Self {
        let identifier = table.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        assert!(identifier, "{table:?} is not a plain table name");
        Self { database, table }
    }

    /// A new random key, stored under `name`. The key is returned this once.
    pub async fn issue(
        &self,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<(ApiKey, ApiKeyRecord), sqlx::Error> {
        let key = ApiKey::generate();
        let record = self.insert(&key, name, at).await?;
        Ok((key, record))
    }

    /// Stores a key the caller already holds (a demo key from the environment). A key stored
    /// before is a unique violation (`crate::db::is_unique_violation`).
    ///
    /// The record carries `at` as given; SQLite keeps it to the millisecond.
    pub async fn insert(
        &self,
        key: &ApiKey,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<ApiKeyRecord, sqlx::Error> {
        let table = self.table;
        let id: i64 = match &self.database {
            Database::Postgres(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (name, key_hash, created_at) VALUES ($1, $2, $3) \
                     RETURNING id"
                )))
                .bind(name)
                .bind(key.hash())
                .bind(at)
                .fetch_one(pool)
                .await?
            }
            Database::Sqlite(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (name, key_hash, created_at) VALUES (?1, ?2, ?3) \
                     RETURNING id"
                )))
                .bind(name)
                .bind(key.hash())
                .bind(unix_millis(at))
                .fetch_one(pool)
                .await?
            }
        };
        Ok(ApiKeyRecord {
            id,
            name: name.to_owned(),
            created_at: at,
        })
    }

    /// Stores `key` under `name` unless it is stored already (a key given by the operator, such as
    /// a demo key from the environment, registered at every start). Two instances starting
    /// together may both try: the second's insert is a unique violation, and is what it wanted.
    pub async fn ensure(
        &self,
        key: &ApiKey,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<ApiKeyRecord, sqlx::Error> {
        if let Some(found) = self.find(key).await? {
            return Ok(found);
        }
        match self.insert(key, name, at).await {
            Err(err) if crate::db::is_unique_violation(&err) => self.find(key).await?.ok_or(err),
            stored => stored,
        }
    }

    /// The stored key, if `key` was ever issued or inserted here.
    pub async fn find(&self, key: &ApiKey) -> Result<Option<ApiKeyRecord>, sqlx::Error> {
        let table = self.table;
        Ok(match &self.database {
            Database::Postgres(pool) => {
                let row: Option<(i64, String, OffsetDateTime)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT id, name, created_at FROM {table} WHERE key_hash = $1"
                    )))
                    .bind(key.hash())
                    .fetch_optional(pool)
                    .await?;
                row.map(|(id, name, created_at)| ApiKeyRecord {
                    id,
                    name,
                    created_at,
                })
            }
            Database::Sqlite(pool) => {
                let row: Option<(i64, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT id, name, created_at FROM {table} WHERE key_hash = ?1"
                )))
                .bind(key.hash())
                .fetch_optional(pool)
                .await?;
                row.map(|(id, name, created_at)| ApiKeyRecord {
                    id,
                    name,
                    created_at: from_unix_millis(created_at),
                })
            }
        })
    }
}

/// The token that opens the fault switches of the simulators and the mailbox, and whatever else
/// lets an operator break a system on purpose: `SDLAB_ADMIN_TOKEN`, the same for every system of
/// a deployment (the lab makes one per run and prints it). Shaped like an API key.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(ApiKey);

impl AdminToken {
    pub fn generate() -> Self {
        Self(ApiKey::generate())
    }

    /// `SDLAB_ADMIN_TOKEN`; unset means no admin endpoint opens.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Ok(env_key(ADMIN_TOKEN_VARIABLE)?.map(Self))
    }

    /// The token itself, to print for its operator.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(sk_…)")
    }
}

/// The variable every system reads its [`AdminToken`] from.
pub const ADMIN_TOKEN_VARIABLE: &str = "SDLAB_ADMIN_TOKEN";

/// Middleware for admin routes (`route_layer(from_fn_with_state(token, require_admin))`): the
/// request goes on only with `Authorization: Bearer <the admin token>`. Without a token
/// configured, every request is refused with a 403 that says how to configure one: a fault
/// switch that anyone could flip would let anyone break the system, so closed is the default.
pub async fn require_admin(
    State(token): State<Option<AdminToken>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return Problem::status(StatusCode::FORBIDDEN)
            .with_detail(format!(
                "Admin endpoints are closed: start the service with {ADMIN_TOKEN_VARIABLE} set, \
                 and send it as `Authorization: Bearer …`."
            ))
            .into_response();
    };
    // Compared by digest, so the comparison's time says nothing about the token.
    let given = bearer_token(request.headers()).and_then(ApiKey::parse);
    match given {
        Some(key) if key.digest() == token.0.digest() => next.run(request).await,
        Some(_) => unauthorized("The admin token is not valid.").into_response(),
        None => unauthorized(&format!(
            "Send the admin token ({ADMIN_TOKEN_VARIABLE}) as `Authorization: Bearer …`."
        ))
        .into_response(),
    }
}

/// The API key from `Authorization: Bearer …`, not yet checked against any store.
#[derive(Debug, Clone)]
pub struct BearerKey(pub ApiKey);

impl<S: Send + Sync> FromRequestParts<S> for BearerKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(unauthorized(
                "Send your API key as `Authorization: Bearer sk_…`.",
            ));
        }
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| unauthorized("The Authorization header must use the Bearer scheme."))?;
        ApiKey::parse(token)
            .map(BearerKey)
            .ok_or_else(|| unauthorized("The API key is not valid."))
    }
}

/// The 401 every system sends for a missing, malformed or unknown key.
pub fn unauthorized(detail: &str) -> Problem {
    Problem::status(StatusCode::UNAUTHORIZED)
        .with_detail(detail)
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="sdlab""#),
        )
}

/// The token of `Authorization: Bearer <token>`, if the header has that form (the scheme is
/// case-insensitive, RFC 9110 section 11.1).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestBackends;
    use axum::http::Request;

    async fn extract(authorization: Option<&str>) -> Result<BearerKey, Problem> {
        let mut builder = Request::builder();
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        BearerKey::from_request_parts(&mut parts, &()).await
    }

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a, b);
        assert_eq!(ApiKey::parse(a.expose()), Some(a));
    }

    #[test]
    fn the_hash_is_stable_and_is_not_the_key() {
        let key = ApiKey::generate();
        assert_eq!(key.hash(), key.hash());
        assert_eq!(key.hash().len(), 64);
        assert!(!key.hash().contains(&key.expose()[3..]));
    }

    #[test]
    fn debug_output_does_not_leak_the_secret() {
        let key = ApiKey::generate();
        assert!(!format!("{key:?}").contains(&key.expose()[3..]));
    }

    #[tokio::test]
    async fn a_bearer_key_is_extracted() {
        let key = ApiKey::generate();
        let extracted = extract(Some(&format!("Bearer {}", key.expose())))
            .await
            .unwrap();
        assert_eq!(extracted.0, key);
    }

    /// A fresh database (`DATABASE_URL`'s engine) with an empty key table named `table`.
    async fn key_table(backends: &TestBackends, table: &'static str) -> ApiKeys {
        match &backends.database {
            Database::Postgres(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} (
                     id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     name       TEXT        NOT NULL,
                     key_hash   TEXT        NOT NULL UNIQUE,
                     created_at TIMESTAMPTZ NOT NULL
                 )"
            )))
            .execute(pool)
            .await
            .map(drop),
            Database::Sqlite(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} (
                     id         INTEGER PRIMARY KEY,
                     name       TEXT    NOT NULL,
                     key_hash   TEXT    NOT NULL UNIQUE,
                     created_at INTEGER NOT NULL
                 )"
            )))
            .execute(pool)
            .await
            .map(drop),
        }
        .expect("creating a key table");
        ApiKeys::new(backends.database.clone(), table)
    }

    /// Now, to the millisecond: what both engines keep.
    fn now() -> OffsetDateTime {
        from_unix_millis(unix_millis(OffsetDateTime::now_utc()))
    }

    #[tokio::test]
    async fn an_issued_key_is_found_with_its_name_and_creation_time() {
        let backends = TestBackends::from_env().await;
        let keys = key_table(&backends, "api_keys").await;

        let (key, issued) = keys.issue("ci", now()).await.unwrap();
        let found = keys.find(&key).await.unwrap();

        assert_eq!(found, Some(issued.clone()), "{}", backends.describe());
        assert_eq!(issued.name, "ci");
    }

    #[tokio::test]
    async fn a_key_that_was_never_stored_is_not_found() {
        let backends = TestBackends::from_env().await;
        let keys = key_table(&backends, "api_keys").await;
        keys.issue("someone", now()).await.unwrap();

        assert_eq!(keys.find(&ApiKey::generate()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_table_holds_the_keys_hash_and_never_the_key() {
        let backends = TestBackends::from_env().await;
        let keys = key_table(&backends, "api_keys").await;

        let (key, _) = keys.issue("ci", now()).await.unwrap();

        let sql = "SELECT key_hash, name FROM api_keys";
        let row: (String, String) = match &backends.database {
            Database::Postgres(pool) => sqlx::query_as(sql).fetch_one(pool).await,
            Database::Sqlite(pool) => sqlx::query_as(sql).fetch_one(pool).await,
        }
        .unwrap();
        assert_eq!(row.0, key.hash());
        assert!(!row.0.contains(&key.expose()[3..]) && !row.1.contains(&key.expose()[3..]));
    }

    #[tokio::test]
    async fn a_key_inserted_twice_is_a_unique_violation() {
        let backends = TestBackends::from_env().await;
        let keys = key_table(&backends, "clients").await;
        let key = ApiKey::generate();
        keys.insert(&key, "demo", now()).await.unwrap();

        let again = keys.insert(&key, "demo", now()).await.unwrap_err();

        assert!(crate::db::is_unique_violation(&again), "{again:?}");
    }

    async fn admin_answer(token: Option<AdminToken>, authorization: Option<&str>) -> StatusCode {
        let router = axum::Router::new()
            .route("/v1/faults", axum::routing::put(|| async { "switched" }))
            .route_layer(axum::middleware::from_fn_with_state(token, require_admin));
        let mut request = Request::put("/v1/faults");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        tower::ServiceExt::oneshot(router, request)
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn an_admin_route_opens_to_its_token_alone_and_to_nobody_without_one() {
        let token = AdminToken::generate();
        let right = format!("Bearer {}", token.expose());
        let wrong = format!("Bearer {}", ApiKey::generate().expose());

        assert_eq!(
            admin_answer(Some(token.clone()), Some(&right)).await,
            StatusCode::OK
        );
        assert_eq!(
            admin_answer(Some(token.clone()), Some(&wrong)).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            admin_answer(Some(token), None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            admin_answer(None, Some(&right)).await,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn a_key_ensured_at_every_start_is_stored_once() {
        let backends = TestBackends::from_env().await;
        let keys = key_table(&backends, "callers").await;
        let key = ApiKey::generate();

        let first = keys.ensure(&key, "payments", now()).await.unwrap();
        let again = keys.ensure(&key, "renamed", now()).await.unwrap();

        assert_eq!(again, first, "{}", backends.describe());
        assert_eq!(keys.find(&key).await.unwrap(), Some(first));
    }

    #[tokio::test]
    async fn each_table_keeps_its_own_keys() {
        let backends = TestBackends::from_env().await;
        let links = key_table(&backends, "api_keys").await;
        let payments = key_table(&backends, "clients").await;

        let (key, _) = links.issue("ci", now()).await.unwrap();

        assert!(links.find(&key).await.unwrap().is_some());
        assert_eq!(payments.find(&key).await.unwrap(), None);
    }

    #[tokio::test]
    #[should_panic(expected = "is not a plain table name")]
    async fn a_table_name_that_is_not_a_plain_identifier_is_refused() {
        let backends = TestBackends::from_env().await;
        ApiKeys::new(backends.database.clone(), "keys; DROP TABLE links");
    }

    #[tokio::test]
    async fn a_missing_or_malformed_key_is_a_401_with_a_challenge() {
        for header in [None, Some("Basic dXNlcjpwYXNz"), Some("Bearer nope")] {
            let problem = extract(header).await.unwrap_err();
            assert_eq!(problem.status, 401, "{header:?}");
            let response = axum::response::IntoResponse::into_response(problem);
            assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }
}
