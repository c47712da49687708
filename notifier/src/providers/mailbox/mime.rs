//! A received message, decoded for reading with `mail-parser`: the subject's RFC 2047 encoded
//! words in any charset, a body in base64 or quoted-printable, and of a multipart message its
//! first text part (or its HTML part as text). Message-ID and Idempotency-Key are kept as they
//! were written, angle brackets included, since they are what a sender will look for.

use mail_parser::MessageParser;
use time::OffsetDateTime;

use super::Message;

impl Message {
    pub(super) fn parse(
        from: String,
        to: Vec<String>,
        raw: &[u8],
        received_at: OffsetDateTime,
    ) -> Self {
        // `None` only for input with no header at all: shown as it arrived.
        let Some(parsed) = MessageParser::default().parse(raw) else {
            return Self {
                received_at,
                message_id: None,
                idempotency_key: None,
                from,
                to,
                subject: String::new(),
                body: String::from_utf8_lossy(raw).replace("\r\n", "\n"),
            };
        };
        let raw_header = |name: &str| parsed.header_raw(name).map(|value| value.trim().to_owned());
        Self {
            received_at,
            message_id: raw_header("Message-ID"),
            idempotency_key: raw_header("Idempotency-Key"),
            from,
            to,
            subject: parsed.subject().unwrap_or_default().to_owned(),
            body: parsed
                .body_text(0)
                .unwrap_or_default()
                .replace("\r\n", "\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Message {
        Message::parse(
            String::new(),
            Vec::new(),
            raw.as_bytes(),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn encoded_subjects_and_bodies_are_decoded_for_reading() {
        let message = parse(
            "Subject: =?utf-8?b?UmXDp3U=?=\r\n =?utf-8?q?_=C2=A312?= now\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             Caf=C3=A9 au lait, a very long line that goes=\r\n on\r\n",
        );

        assert_eq!(message.subject, "Reçu £12 now");
        assert_eq!(
            message.body,
            "Café au lait, a very long line that goes on\n"
        );
    }

    #[test]
    fn the_ids_a_sender_looks_for_are_kept_as_written() {
        let message = parse(
            "Message-ID: <0190%3Aemail@sdlab.notifier>\r\nIdempotency-Key: 0190:email\r\n\
             Subject: hi\r\n\r\nbody\r\n",
        );

        assert_eq!(
            message.message_id.as_deref(),
            Some("<0190%3Aemail@sdlab.notifier>")
        );
        assert_eq!(message.idempotency_key.as_deref(), Some("0190:email"));
    }

    #[test]
    fn a_multipart_message_is_shown_by_its_text_part() {
        let message = parse(
            "Subject: both\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nUmXDp3UgMTIuNTAgRVVS\r\n\
             --b\r\nContent-Type: text/html\r\n\r\n<p>Re&ccedil;u 12.50 EUR</p>\r\n--b--\r\n",
        );

        assert_eq!(message.body, "Reçu 12.50 EUR");
    }
}
