//! `sdlab`: every system of the workspace in one process, on embedded backends unless
//! `DATABASE_URL`, `REDIS_URL` and `KAFKA_BROKERS` say otherwise. Run with
//!
//! ```text
//! cargo run --release
//! ```
//!
//! It prints where each system listens and a few curl lines to try. Each system is started through
//! the same `Application::build` / `run_until_stopped` its own binary uses, so the lab adds
//! nothing a system does not do alone; Ctrl-C (or SIGTERM) stops them all gracefully.

use std::{future::Future, pin::Pin};

use tokio::task::JoinSet;

type Running = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// The allocator every system binary uses (see `url-shortener/src/main.rs` for why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let stop = platform::shutdown::on_signal();

    let shortener = url_shortener::Application::build(url_shortener::Settings::from_env()?).await?;
    // A key and a link made for this run, so that every curl line in the banner works as printed.
    // They are kept like any others: each start of the lab adds one of each.
    let (demo_key, key_record) = shortener.shortener().issue_api_key("lab demo key").await?;
    let demo_link = shortener
        .shortener()
        .create(
            key_record.id,
            url_shortener::service::CreateLink {
                url: "https://doc.rust-lang.org/book/".into(),
                ..Default::default()
            },
        )
        .await?;
    // The rate limiter's gateway stands in front of the shortener, unless told otherwise.
    let mut limiter_settings = rate_limiter::Settings::from_env()?;
    if limiter_settings.upstream.is_none() {
        let origin = format!("http://127.0.0.1:{}", shortener.port());
        limiter_settings.upstream = Some(origin.parse().map_err(anyhow::Error::msg)?);
    }
    let limiter = rate_limiter::Application::build(limiter_settings).await?;
    let payments =
        idempotency_demo::Application::build(idempotency_demo::Settings::from_env()?).await?;
    let notifier = notifier::Application::build(notifier::Settings::from_env()?).await?;
    let feed = feed_service::Application::build(feed_service::Settings::from_env()?).await?;
    // Two users made for this run, as the shortener's key is: you (your token goes in the banner)
    // and an author with a post, whom the curl lines follow. Handles are unique and kept, so this
    // run's carry the time it started.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let feed_you = feed.feed().sign_up(&format!("you_{run}")).await?;
    let feed_author = feed.feed().sign_up(&format!("author_{run}")).await?;
    feed.feed()
        .publish(
            &feed_author.account,
            "Hello from the lab: follow me and this shows in your feed.".into(),
            None,
        )
        .await?;
    // A client of the payments API made for this run, like the shortener's key; the notifier
    // knows it as a user with an address at the mailbox, so its payments get receipts.
    let (payments_client, payments_key) =
        payments.payments().create_client("lab demo client").await?;
    notifier
        .notifier()
        .put_user(
            notifier::domain::UserId::parse(&notifier::events::receipts::payer(
                payments_client.id.0,
            ))
            .expect("a client id makes a user id"),
            notifier::domain::UserDetails {
                email: Some("payer@sdlab.local".into()),
                ..Default::default()
            },
        )
        .await?;

    let banner = Banner {
        shortener_url: format!("http://localhost:{}", shortener.port()),
        shortener_backends: shortener.describe_backends(),
        limiter_url: format!("http://localhost:{}", limiter.port()),
        limiter_backends: limiter.describe_backends().to_owned(),
        gateway_url: format!(
            "http://localhost:{}",
            limiter
                .gateway_port()
                .expect("the lab always gives the gateway an upstream")
        ),
        demo_key: demo_key.expose().to_owned(),
        demo_code: demo_link.code.to_string(),
        payments_url: format!("http://localhost:{}", payments.port()),
        payments_backends: payments.describe_backends(),
        provider_url: payments
            .provider()
            .map(|provider| format!("http://localhost:{}", provider.addr.port())),
        payments_key: payments_key.expose().to_owned(),
        notifier_url: format!("http://localhost:{}", notifier.port()),
        notifier_backends: notifier.describe_backends(),
        mailbox_url: notifier
            .local_providers()
            .mailbox
            .as_ref()
            .map(|served| format!("http://localhost:{}/mailbox", served.addr.port())),
        sms_push_url: notifier
            .local_providers()
            .simulator
            .as_ref()
            .map(|served| format!("http://localhost:{}", served.addr.port())),
        feed_url: format!("http://localhost:{}", feed.port()),
        feed_backends: feed.describe_backends(),
        feed_token: feed_you.token.expose().to_owned(),
        feed_you: feed_you.account.id.to_string(),
        feed_author: feed_author.account.id.to_string(),
    };

    let systems: Vec<(&str, Running)> = vec![
        (
            "url-shortener",
            Box::pin(shortener.run_until_stopped(stop.clone().cancelled_owned())),
        ),
        (
            "rate-limiter",
            Box::pin(limiter.run_until_stopped(stop.clone().cancelled_owned())),
        ),
        (
            "idempotency-demo",
            Box::pin(payments.run_until_stopped(stop.clone().cancelled_owned())),
        ),
        (
            "notifier",
            Box::pin(notifier.run_until_stopped(stop.clone().cancelled_owned())),
        ),
        (
            "feed-service",
            Box::pin(feed.run_until_stopped(stop.clone().cancelled_owned())),
        ),
    ];
    banner.print();

    // If one system fails, stop the others and report the first failure.
    let mut running = JoinSet::new();
    for (name, system) in systems {
        running.spawn(async move { (name, system.await) });
    }
    let mut first_error = None;
    while let Some(joined) = running.join_next().await {
        let (name, result) = joined?;
        if let Err(err) = result {
            tracing::error!(system = name, error = ?err, "system stopped with an error");
            stop.cancel();
            first_error.get_or_insert(err.context(format!("{name} failed")));
        }
    }
    first_error.map_or(Ok(()), Err)
}

struct Banner {
    shortener_url: String,
    shortener_backends: String,
    limiter_url: String,
    limiter_backends: String,
    gateway_url: String,
    demo_key: String,
    demo_code: String,
    payments_url: String,
    payments_backends: String,
    provider_url: Option<String>,
    payments_key: String,
    notifier_url: String,
    notifier_backends: String,
    mailbox_url: Option<String>,
    sms_push_url: Option<String>,
    feed_url: String,
    feed_backends: String,
    feed_token: String,
    feed_you: String,
    feed_author: String,
}

impl Banner {
    fn print(&self) {
        let Self {
            shortener_url: s,
            shortener_backends,
            limiter_url: r,
            limiter_backends,
            gateway_url: g,
            demo_key,
            demo_code,
            payments_url: p,
            payments_backends,
            provider_url,
            payments_key,
            notifier_url: n,
            notifier_backends,
            mailbox_url,
            sms_push_url,
            feed_url: f,
            feed_backends,
            feed_token,
            feed_you,
            feed_author,
        } = self;
        let mailbox = mailbox_url.as_deref().unwrap_or("<your SMTP server>");
        let sms_push = sms_push_url.as_deref().unwrap_or("<NOTIFIER_PROVIDER_URL>");
        // The fault switches are only there when the lab runs the simulator itself.
        let provider = provider_url.as_deref().unwrap_or("<PAYMENTS_PROVIDER_URL>");
        println!(
            r#"
sdlab is running. Ctrl-C stops it.

  url-shortener  {s}   API docs {s}/docs   metrics {s}/metrics   ({shortener_backends})
  rate-limiter   {r}   API docs {r}/docs   metrics {r}/metrics   ({limiter_backends})
                 gateway {g}, in front of the url-shortener
  payments       {p}   API docs {p}/docs   metrics {p}/metrics   ({payments_backends})
  notifier       {n}   API docs {n}/docs   metrics {n}/metrics   ({notifier_backends})
  feed-service   {f}   API docs {f}/docs   metrics {f}/metrics   ({feed_backends})

Try it (an API key and a link were made for this run):

  export KEY={demo_key}
  # follow the link, then read its visit count (only the key that made it may)
  curl -si {s}/{demo_code}
  curl -s {s}/api/v1/links/{demo_code} -H "authorization: Bearer $KEY"
  # shorten your own URL, with a custom alias if you like
  curl -s {s}/api/v1/links -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
       -d '{{"url": "https://www.rust-lang.org/learn", "alias": "learn-rust-{demo_code}"}}'
  # ask the rate limiter: 20 at once, then 10 a second (run it 21 times to see a 429)
  curl -si {r}/api/v1/check -H 'content-type: application/json' -d '{{"rule": "per-user", "key": "user:42"}}'
  curl -s {r}/api/v1/rules
  # the same shortener through the gateway: 40 at once per IP, then 20 a second
  curl -si {g}/{demo_code}
  # pay twice with one Idempotency-Key: one charge, and the second answer is a replay
  export PAY_KEY={payments_key}
  curl -si {p}/v1/payments -H "authorization: Bearer $PAY_KEY" -H 'idempotency-key: order-1' \
       -H 'content-type: application/json' -d '{{"amount": 2000, "currency": "usd", "source": "tok_visa"}}'
  # make the provider crash after charging, pay, see the 502, heal it, retry: still one charge
  curl -s -X PUT {provider}/v1/faults -H 'content-type: application/json' -d '{{"crash_after_charge_rate": 1}}'
  curl -s {provider}/v1/charges
  # each successful payment sends a receipt through the notifier: read it in the mailbox
  open {mailbox}
  # a user with contacts and an opt-out, a notification, and where each channel's delivery stands
  curl -s -X PUT {n}/v1/users/ada -H 'content-type: application/json' \
       -d '{{"email": "ada@example.com", "phone": "+442071838750", "push_tokens": ["device-1"], "preferences": {{"sms": false}}}}'
  curl -s {n}/v1/notifications -H 'content-type: application/json' \
       -d '{{"user_id": "ada", "template": "welcome", "data": {{"name": "Ada"}}}}'
  curl -s {n}/v1/notifications/<id>
  # break the SMS/push provider, send, watch the retries (5 s, 30 s, 5 min) and the dead letters
  curl -s -X PUT {sms_push}/v1/faults -H 'content-type: application/json' -d '{{"error_rate": 1}}'
  curl -s {n}/v1/dlq
  curl -s -X POST {n}/v1/dlq/<dead letter id>/redrive
  # a home feed (a user and an author with a post were made for this run): empty, then follow
  # the author and their post is in it; post yourself, page with limit and next_cursor
  export FEED_TOKEN={feed_token} ME={feed_you}
  curl -s {f}/v1/users/$ME/feed -H "authorization: Bearer $FEED_TOKEN"
  curl -si -X PUT {f}/v1/users/$ME/following/{feed_author} -H "authorization: Bearer $FEED_TOKEN"
  curl -s {f}/v1/posts -H "authorization: Bearer $FEED_TOKEN" -H 'content-type: application/json' -d '{{"text": "My first post"}}'
  curl -s "{f}/v1/users/$ME/feed?limit=1" -H "authorization: Bearer $FEED_TOKEN"
  # sign up with a handle of your own: the answer holds your id and token, shown once (a taken handle is 409)
  curl -s {f}/v1/users -H 'content-type: application/json' -d '{{"handle": "ada"}}'
"#
        );
    }
}
