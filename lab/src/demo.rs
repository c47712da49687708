//! The demo data each start of the lab makes, so that every curl line in the banner works as
//! printed. It is kept like any other data: each start adds one more of each.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::systems::Systems;

pub struct Demo {
    /// The shortener's API key, and a link it made.
    pub shortener_key: String,
    pub link_code: String,
    /// A payments client's API key. The notifier knows the client as a user with an address at
    /// the mailbox, so its payments get receipts.
    pub payments_key: String,
    /// A caller's key for the notifier's API.
    pub notifier_key: String,
    /// A feed user (you: your token and id) and an author with a post, for you to follow.
    pub feed_token: String,
    pub feed_you: String,
    pub feed_author: String,
}

impl Demo {
    pub async fn create(systems: &Systems) -> anyhow::Result<Self> {
        let (shortener_key, link_code) = shortener(&systems.shortener).await?;
        let payments_key = payments_client(&systems.payments, &systems.notifier).await?;
        let notifier_key = systems
            .notifier
            .notifier()
            .issue_caller_key("lab")
            .await?
            .expose()
            .to_owned();
        let (feed_token, feed_you, feed_author) = feed(&systems.feed).await?;
        Ok(Self {
            shortener_key,
            link_code,
            payments_key,
            notifier_key,
            feed_token,
            feed_you,
            feed_author,
        })
    }
}

/// An API key, and a link made with it.
async fn shortener(shortener: &url_shortener::Application) -> anyhow::Result<(String, String)> {
    let (key, record) = shortener.shortener().issue_api_key("lab demo key").await?;
    let link = shortener
        .shortener()
        .create(
            record.id,
            url_shortener::service::CreateLink {
                url: "https://doc.rust-lang.org/book/".into(),
                ..Default::default()
            },
        )
        .await?;
    Ok((key.expose().to_owned(), link.code.to_string()))
}

/// A payments client, which the notifier knows as the user its receipts go to.
async fn payments_client(
    payments: &idempotency_demo::Application,
    notifier: &notifier::Application,
) -> anyhow::Result<String> {
    let (client, key) = payments.payments().create_client("lab demo client").await?;
    let payer = notifier::events::receipts::payer(client.id.0);
    notifier
        .notifier()
        .put_user(
            notifier::domain::UserId::parse(&payer).expect("a client id makes a user id"),
            notifier::domain::UserDetails {
                email: Some("payer@sdlab.local".into()),
                ..Default::default()
            },
        )
        .await?;
    Ok(key.expose().to_owned())
}

/// You (a token for the banner) and an author with a post. Handles are unique and kept, so this
/// run's carry the time it started.
async fn feed(feed: &feed_service::Application) -> anyhow::Result<(String, String, String)> {
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let you = feed.feed().sign_up(&format!("you_{run}")).await?;
    let author = feed.feed().sign_up(&format!("author_{run}")).await?;
    feed.feed()
        .publish(
            &author.account,
            "Hello from the lab: follow me and this shows in your feed.".into(),
            None,
        )
        .await?;
    Ok((
        you.token.expose().to_owned(),
        you.account.id.to_string(),
        author.account.id.to_string(),
    ))
}
