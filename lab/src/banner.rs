//! What the lab prints once every system is up: where each listens, on which backends, and curl
//! lines to try that work as printed (the demo data makes sure of it).

use crate::{demo::Demo, systems::Systems};

pub fn print(systems: &Systems, demo: &Demo) {
    let Systems {
        shortener,
        limiter,
        payments,
        notifier,
        feed,
        console,
        limiter_key,
        admin_token,
        engines,
    } = systems;
    let limiter_key = limiter_key.expose();
    let admin_token = admin_token.expose();
    let local = |port: u16| format!("http://localhost:{port}");
    let s = local(shortener.port());
    let shortener_backends = shortener.describe_backends();
    let r = local(limiter.port());
    let limiter_backends = limiter.describe_backends();
    let g = local(
        limiter
            .gateway_port()
            .expect("the lab always gives the gateway an upstream"),
    );
    let p = local(payments.port());
    let payments_backends = payments.describe_backends();
    let provider_url = payments
        .provider()
        .map(|provider| local(provider.addr.port()));
    let n = local(notifier.port());
    let notifier_backends = notifier.describe_backends();
    let providers = notifier.local_providers();
    let mailbox_url = providers
        .mailbox
        .as_ref()
        .map(|served| format!("{}/mailbox", local(served.addr.port())));
    let sms_push_url = providers
        .simulator
        .as_ref()
        .map(|served| local(served.addr.port()));
    let c = local(console.port());
    let f = local(feed.port());
    let feed_backends = feed.describe_backends();
    let Demo {
        shortener_key: demo_key,
        link_code: demo_code,
        payments_key,
        notifier_key,
        feed_token,
        feed_you,
        feed_author,
    } = demo;
    let mailbox = mailbox_url.as_deref().unwrap_or("<your SMTP server>");
    let sms_push = sms_push_url.as_deref().unwrap_or("<NOTIFIER_PROVIDER_URL>");
    // The fault switches are only there when the lab runs the simulator itself.
    let provider = provider_url.as_deref().unwrap_or("<PAYMENTS_PROVIDER_URL>");
    // Printed as localhost:<port>, like every address here: docker-compose.yml publishes its
    // Toxiproxy's API at the same port on the host.
    let proxies = engines
        .api()
        .and_then(|api| api.port_or_known_default())
        .map(local);
    let proxies_line = proxies.as_deref().map_or_else(String::new, |api| {
        format!(
            "  engine proxies {api}   Toxiproxy's API: {}\n",
            engines.routed().join(", ")
        )
    });
    let proxies_try = proxies.as_deref().map_or_else(String::new, |api| {
        let example = engines
            .routed()
            .iter()
            .find(|name| *name == "rate-limiter-redis")
            .or(engines.routed().first())
            .map_or("", String::as_str);
        format!(
            r#"  # break a real engine: each system reaches it through a proxy of its own; disabled, the
  # proxy closes every connection (the console's proxy switches do this), enabled, it is back
  curl -s {api}/proxies -H "authorization: Bearer $ADMIN_TOKEN"
  curl -s -X POST {api}/proxies/{example} -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
       -d '{{"enabled": false}}'
"#
        )
    });
    println!(
        r#"
sdlab is running. Ctrl-C stops it.

  console        {c}   every system live, on one page
{proxies_line}
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
  export LIMIT_KEY={limiter_key}
  curl -si {r}/api/v1/check -H "authorization: Bearer $LIMIT_KEY" -H 'content-type: application/json' \
       -d '{{"rule": "per-user", "key": "user:42"}}'
  curl -s {r}/api/v1/rules -H "authorization: Bearer $LIMIT_KEY"
  # the same shortener through the gateway: 40 at once per IP, then 20 a second
  curl -si {g}/{demo_code}
  # pay twice with one Idempotency-Key: one charge, and the second answer is a replay
  export PAY_KEY={payments_key}
  curl -si {p}/v1/payments -H "authorization: Bearer $PAY_KEY" -H 'idempotency-key: order-1' \
       -H 'content-type: application/json' -d '{{"amount": 2000, "currency": "usd", "source": "tok_visa"}}'
  # make the provider crash after charging, pay, see the 502, heal it, retry: still one charge
  # (the fault switches open to the admin token made for this run)
  export ADMIN_TOKEN={admin_token}
  curl -s -X PUT {provider}/v1/faults -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
       -d '{{"crash_after_charge_rate": 1}}'
  curl -s {provider}/v1/charges
  # each successful payment sends a receipt through the notifier: read it in the mailbox
  open {mailbox}
  # a user with contacts and an opt-out, a notification, and where each channel's delivery stands
  # (the notifier's callers need a key: one was made for this run)
  export NOTIFY_KEY={notifier_key}
  curl -s -X PUT {n}/v1/users/ada -H "authorization: Bearer $NOTIFY_KEY" -H 'content-type: application/json' \
       -d '{{"email": "ada@example.com", "phone": "+442071838750", "push_tokens": ["device-1"], "preferences": {{"sms": false}}}}'
  curl -s {n}/v1/notifications -H "authorization: Bearer $NOTIFY_KEY" -H 'content-type: application/json' \
       -d '{{"user_id": "ada", "template": "welcome", "data": {{"name": "Ada"}}}}'
  curl -s {n}/v1/notifications/<id> -H "authorization: Bearer $NOTIFY_KEY"
  # break the SMS/push provider, send, watch the retries (5 s, 30 s, 5 min) and the dead letters
  curl -s -X PUT {sms_push}/v1/faults -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
       -d '{{"error_rate": 1}}'
  curl -s {n}/v1/dlq -H "authorization: Bearer $NOTIFY_KEY"
  curl -s -X POST {n}/v1/dlq/<dead letter id>/redrive -H "authorization: Bearer $NOTIFY_KEY"
  # a home feed (a user and an author with a post were made for this run): empty, then follow
  # the author and their post is in it; post yourself, page with limit and next_cursor
  export FEED_TOKEN={feed_token} ME={feed_you}
  curl -s {f}/v1/users/$ME/feed -H "authorization: Bearer $FEED_TOKEN"
  curl -si -X PUT {f}/v1/users/$ME/following/{feed_author} -H "authorization: Bearer $FEED_TOKEN"
  curl -s {f}/v1/posts -H "authorization: Bearer $FEED_TOKEN" -H 'content-type: application/json' -d '{{"text": "My first post"}}'
  curl -s "{f}/v1/users/$ME/feed?limit=1" -H "authorization: Bearer $FEED_TOKEN"
  # sign up with a handle of your own: the answer holds your id and token, shown once (a taken handle is 409)
  curl -s {f}/v1/users -H 'content-type: application/json' -d '{{"handle": "ada"}}'
{proxies_try}"#
    );
}
