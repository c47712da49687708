//! `GET /mailbox`: the messages as an HTML page, newest first.

use std::sync::Arc;

use axum::{
    extract::State,
    http::header,
    response::{Html, IntoResponse, Response},
};
use platform::problem::Problem;

use super::Mailbox;

/// The page shows what strangers wrote (any sender can put `<script>` in a subject): every value
/// goes through minijinja's HTML auto-escaping, which a template named `.html` turns on, and the
/// Content-Security-Policy refuses scripts and remote content should anything get through.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>Mailbox · sdlab</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; vertical-align: top; }
pre { margin: 0; white-space: pre-wrap; font: 13px ui-monospace, monospace; }
.meta { color: #666; }
</style>
</head>
<body>
<h1>Mailbox</h1>
<p class="meta">Received {{ counts.received }} (of which {{ counts.duplicates }} repeated a Message-ID and were not kept again); refused {{ counts.rejected }} by fault switches. The newest {{ capacity }} are kept, and are also at <a href="/mailbox/messages">/mailbox/messages</a> as JSON. This page reloads every 5 seconds.</p>
{% if messages %}
<table>
<thead><tr><th>Received</th><th>From</th><th>To</th><th>Subject</th><th>Body</th></tr></thead>
<tbody>
{% for message in messages %}
<tr>
<td>{{ message.received_at[:19] | replace("T", " ") }} UTC</td>
<td>{{ message.from }}</td>
<td>{{ message.to | join(", ") }}</td>
<td>{{ message.subject }}</td>
<td><pre>{{ message.body }}</pre></td>
</tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p>No mail yet.</p>
{% endif %}
</body>
</html>
"#;

const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";

pub(super) async fn page(State(mailbox): State<Arc<Mailbox>>) -> Result<Response, Problem> {
    let mut messages = mailbox.messages();
    messages.reverse();
    let html = minijinja::Environment::new()
        .render_named_str(
            "mailbox.html",
            PAGE,
            minijinja::context! {
                messages,
                counts => mailbox.counts(),
                capacity => mailbox.capacity,
            },
        )
        .map_err(|err| Problem::internal(&err))?;
    Ok(([(header::CONTENT_SECURITY_POLICY, PAGE_POLICY)], Html(html)).into_response())
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{Request, StatusCode},
    };
    use platform::testing::http::send_to;
    use time::OffsetDateTime;

    use super::*;
    use crate::providers::mailbox::Message;

    #[tokio::test]
    async fn html_in_a_message_is_escaped_on_the_page() {
        let mailbox = Mailbox::new();
        mailbox.keep(Message::parse(
            "mallory@example.com".into(),
            vec!["ada@example.com".into()],
            b"Subject: <script>alert(1)</script>\r\n\r\n<img src=x onerror=alert(2)> & more\r\n",
            OffsetDateTime::UNIX_EPOCH,
        ));

        let request = Request::get("/mailbox").body(Body::empty()).unwrap();
        let response = send_to(&mailbox.router(), request).await;
        let html = String::from_utf8(response.body.to_vec()).unwrap();

        assert_eq!(response.status, StatusCode::OK);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(2)&gt; &amp; more"),
            "{html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert_eq!(response.header("content-security-policy"), PAGE_POLICY);
    }
}
