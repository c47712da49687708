//! Tracing setup: human-readable lines by default, JSON lines with `LOG_FORMAT=json`, filtered by
//! `RUST_LOG` (default `info`, with the chattiest dependencies turned down).
//!
//! Every request runs inside a span carrying its request id (see `http`), so each line a handler
//! logs can be traced back to the request that caused it.

use std::fmt::{Debug, Display};

use tracing::{
    Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    field::RecordFields,
    filter::Targets,
    fmt::{self, FormatFields, MakeWriter, format::Writer},
    prelude::*,
};

const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber, writing to stdout. Calling it twice is harmless (the second
/// call does nothing), so binaries and test helpers can both call it.
pub fn init() {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _already_installed = subscriber(std::io::stdout, ansi).try_init();
}

/// The subscriber every binary installs, writing to `writer`. Public so that a benchmark can run
/// under exactly what production pays for logging (`tracing::subscriber::with_default`).
pub fn subscriber<W>(writer: W, ansi: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = filter(std::env::var("RUST_LOG").ok());
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        Box::new(registry.with(fmt::layer().json().flatten_event(true).with_writer(writer)))
    } else if ansi {
        Box::new(registry.with(fmt::layer().compact().with_ansi(true).with_writer(writer)))
    } else {
        let layer = fmt::layer()
            .compact()
            .with_ansi(false)
            .fmt_fields(PlainFields);
        Box::new(registry.with(layer.with_writer(writer)))
    }
}

/// The filter for `directives` (`RUST_LOG`; [`DEFAULT_FILTER`] when unset, empty or invalid).
///
/// Directives of targets and levels, the usual kind, make a static [`Targets`] filter, decided
/// once per call site. Only directives that name spans or fields (`[request{method=POST}]=debug`)
/// need an [`EnvFilter`], which keeps a table of live spans and takes its locks on every span's
/// creation, enter, exit and close, a cost the rate limiter's decision API showed against a bare
/// handler (`rate-limiter/DESIGN.md` §11).
fn filter(directives: Option<String>) -> Box<dyn Layer<Registry> + Send + Sync> {
    let directives = directives
        .filter(|directives| !directives.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    // A span or field filter is written in brackets (`[span{field=value}]`); `Targets` would
    // read it as an odd target name.
    if !directives.contains('[')
        && let Ok(targets) = directives.parse::<Targets>()
    {
        return Box::new(targets);
    }
    Box::new(EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)))
}

/// Fields written as `DefaultFields` writes them without colours (`name=value`, strings quoted,
/// the message bare, an error's sources listed), but written straight: `DefaultFields` paints each
/// name through an ANSI style even when colours are off (seen in the rate limiter's profile,
/// `rate-limiter/DESIGN.md` §11). Used when the output is not a terminal, which is where
/// throughput matters.
struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: std::fmt::Result,
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match value.source() {
            Some(source) => self.record_debug(
                field,
                &format_args!("{value} {}.sources={}", field.name(), SourceList(source)),
            ),
            None => self.record_debug(field, &format_args!("{value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = match field.name() {
            "message" => write!(self.writer, "{separator}{value:?}"),
            // Fields of records converted from the `log` crate, already shown as the target.
            name if name.starts_with("log.") => Ok(()),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(self.writer, "{separator}{name}={value:?}")
            }
        };
    }
}

/// An error's chain of sources, `[first, second]`.
struct SourceList<'a>(&'a (dyn std::error::Error + 'static));

impl Display for SourceList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        let mut source = Some(self.0);
        while let Some(error) = source {
            list.entry(&format_args!("{error}"));
            source = error.source();
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::Level;

    use super::*;

    /// A writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|failure| failure as _)
        }
    }

    /// Logs one span and one event with every kind of field.
    fn log_everything() {
        let error = Failure("store failed", Some(Box::new(Failure("timed out", None))));
        let alone = Failure("no source", None);
        let span = tracing::info_span!("request", service = "svc", request_id = %"abc-1", n = 3);
        let _entered = span.enter();
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            other = &alone as &dyn std::error::Error,
            r#type = "raw",
            quoted = "a \"b\"",
            shown = %"as is",
            debugged = ?Some(1.5),
            flag = true,
            "the message {}",
            42
        );
    }

    fn lines_with<N>(fields: N) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = fmt::layer()
            .compact()
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .with_writer(move || writer.clone());
        let subscriber = Registry::default().with(layer);
        tracing::subscriber::with_default(subscriber, log_everything);
        captured.text()
    }

    #[test]
    fn plain_fields_write_what_the_default_formatter_writes_without_colours() {
        let plain = lines_with(PlainFields);
        assert_eq!(plain, lines_with(fmt::format::DefaultFields::new()));
        assert!(plain.contains("request_id=abc-1"), "{plain}");
        assert!(plain.contains("error.sources=[timed out]"), "{plain}");
        assert!(plain.contains("type=\"raw\""), "{plain}");
    }

    fn enabled_with(directives: Option<&str>) -> [bool; 4] {
        let subscriber = Registry::default().with(filter(directives.map(str::to_owned)));
        tracing::subscriber::with_default(subscriber, || {
            let outside = [
                tracing::enabled!(target: "app", Level::INFO),
                tracing::enabled!(target: "app", Level::DEBUG),
                tracing::enabled!(target: "sqlx::query", Level::INFO),
            ];
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            let inside = tracing::enabled!(target: "app", Level::DEBUG);
            [outside[0], outside[1], outside[2], inside]
        })
    }

    #[test]
    fn the_filter_follows_the_directives_of_every_kind() {
        // [info in app, debug in app, info in sqlx, debug in app inside a `request` span]
        let default = [true, false, false, false];
        assert_eq!(enabled_with(None), default);
        assert_eq!(enabled_with(Some("  ")), default);
        assert_eq!(enabled_with(Some("app=loudest")), default);
        assert_eq!(enabled_with(Some("debug")), [true, true, true, true]);
        assert_eq!(
            enabled_with(Some("warn,app=info")),
            [true, false, false, false]
        );
    }

    #[test]
    fn a_span_directive_is_followed_too() {
        // The static filter cannot express it; `EnvFilter` does.
        assert_eq!(
            enabled_with(Some("info,[request]=debug")),
            [true, false, true, true]
        );
    }
}
