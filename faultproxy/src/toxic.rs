//! Toxics: what a proxy does to the bytes it forwards, in Toxiproxy's JSON.
//!
//! ```json
//! {"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0,
//!  "attributes": {"latency": 500, "jitter": 50}}
//! ```
//!
//! - `stream`: `upstream` is what the client sends to the engine, `downstream` (the default) what
//!   the engine answers.
//! - `toxicity`: the chance, from 0 to 1 (the default), that the toxic acts on a connection,
//!   drawn once per connection, and drawn again when the toxic is changed.
//! - `name`: `<type>_<stream>` unless given.
//!
//! Three types, each with attributes in milliseconds, at most a minute
//! ([`platform::fault::MAX_LATENCY_MS`]) like the systems' own switches:
//! - `latency` (`latency`, `jitter`): each chunk is sent `latency` ± `jitter` after it was read,
//!   so a pipelined client waits the latency once, not once per chunk in flight;
//! - `timeout` (`timeout`): nothing gets through (the data is dropped) and the connection is
//!   closed after `timeout`, or held open for as long as the toxic stays if `timeout` is 0;
//!   removing the toxic closes the connections it held, whose bytes are lost;
//! - `reset_peer` (`timeout`): the first data after the toxic arrives resets the connection
//!   (TCP RST, "connection reset by peer") `timeout` later.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// The most any attribute may be, in milliseconds.
pub const MAX_MS: u64 = platform::fault::MAX_LATENCY_MS;

/// Which way the bytes flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// From the client to the engine.
    Upstream,
    /// From the engine to the client.
    #[default]
    Downstream,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
        }
    }
}

/// A toxic as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Toxic {
    pub name: String,
    #[serde(flatten)]
    pub kind: ToxicKind,
    pub stream: Stream,
    pub toxicity: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    Latency { latency: u64, jitter: u64 },
    Timeout { timeout: u64 },
    ResetPeer { timeout: u64 },
}

/// The types a toxic can be, as a request names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToxicType {
    Latency,
    Timeout,
    ResetPeer,
}

impl ToxicKind {
    fn kind(&self) -> ToxicType {
        match self {
            Self::Latency { .. } => ToxicType::Latency,
            Self::Timeout { .. } => ToxicType::Timeout,
            Self::ResetPeer { .. } => ToxicType::ResetPeer,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Latency { .. } => "latency",
            Self::Timeout { .. } => "timeout",
            Self::ResetPeer { .. } => "reset_peer",
        }
    }

    /// A toxic of type `kind` with every attribute 0 (what Toxiproxy gives an attribute left
    /// out), then `attributes` set over it.
    fn new(kind: ToxicType, attributes: &Map<String, Value>) -> Result<Self, Error> {
        let zero = match kind {
            ToxicType::Latency => Self::Latency {
                latency: 0,
                jitter: 0,
            },
            ToxicType::Timeout => Self::Timeout { timeout: 0 },
            ToxicType::ResetPeer => Self::ResetPeer { timeout: 0 },
        };
        zero.with(attributes)
    }

    /// This toxic with `attributes` set over its own: an update names only what it changes.
    fn with(self, attributes: &Map<String, Value>) -> Result<Self, Error> {
        let mut kind = self;
        for (name, value) in attributes {
            let field = format!("attributes/{name}");
            let slot = match (&mut kind, name.as_str()) {
                (Self::Latency { latency, .. }, "latency") => latency,
                (Self::Latency { jitter, .. }, "jitter") => jitter,
                (Self::Timeout { timeout } | Self::ResetPeer { timeout }, "timeout") => timeout,
                _ => {
                    let takes = match kind {
                        Self::Latency { .. } => "`latency` and `jitter`",
                        Self::Timeout { .. } | Self::ResetPeer { .. } => "`timeout`",
                    };
                    return Err(Error::invalid(
                        &field,
                        format!("a {} toxic takes {takes}", kind.type_name()),
                    ));
                }
            };
            let milliseconds = value.as_u64().filter(|ms| *ms <= MAX_MS).ok_or_else(|| {
                Error::invalid(
                    &field,
                    format!("must be a whole number of milliseconds, 0 to {MAX_MS}"),
                )
            })?;
            *slot = milliseconds;
        }
        Ok(kind)
    }
}

/// A toxic to add (`POST /proxies/{name}/toxics`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToxic {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: ToxicType,
    #[serde(default)]
    pub stream: Stream,
    #[serde(default = "always")]
    pub toxicity: f32,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

fn always() -> f32 {
    1.0
}

impl NewToxic {
    pub fn into_toxic(self) -> Result<Toxic, Error> {
        let kind = ToxicKind::new(self.kind, &self.attributes)?;
        let name = match self.name {
            Some(name) => name,
            None => format!("{}_{}", kind.type_name(), self.stream.as_str()),
        };
        check_name(&name)?;
        Ok(Toxic {
            name,
            kind,
            stream: self.stream,
            toxicity: check_toxicity(self.toxicity)?,
        })
    }
}

/// A change to a toxic (`POST /proxies/{name}/toxics/{toxic}`): its toxicity and any of its
/// attributes. A client that sends the whole toxic back may repeat its name, type and stream,
/// which cannot change (delete the toxic and add another).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToxicUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<ToxicType>,
    #[serde(default)]
    pub stream: Option<Stream>,
    #[serde(default)]
    pub toxicity: Option<f32>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

impl ToxicUpdate {
    pub fn apply(self, toxic: &Toxic) -> Result<Toxic, Error> {
        let unchanged = |field: &str, same: bool| {
            if same {
                Ok(())
            } else {
                Err(Error::invalid(
                    field,
                    "cannot change: delete the toxic and add another",
                ))
            }
        };
        unchanged("name", self.name.is_none_or(|name| name == toxic.name))?;
        unchanged(
            "type",
            self.kind.is_none_or(|kind| kind == toxic.kind.kind()),
        )?;
        unchanged("stream", self.stream.is_none_or(|s| s == toxic.stream))?;
        Ok(Toxic {
            name: toxic.name.clone(),
            kind: toxic.kind.with(&self.attributes)?,
            stream: toxic.stream,
            toxicity: match self.toxicity {
                Some(toxicity) => check_toxicity(toxicity)?,
                None => toxic.toxicity,
            },
        })
    }
}

fn check_toxicity(toxicity: f32) -> Result<f32, Error> {
    if (0.0..=1.0).contains(&toxicity) {
        Ok(toxicity)
    } else {
        Err(Error::invalid("toxicity", "must be from 0 to 1"))
    }
}

/// A proxy's or a toxic's name: it is a path segment of the API, so it is kept to letters,
/// digits, `-`, `_` and `.`, which need no escaping there.
pub fn check_name(name: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 100 || !name.chars().all(allowed) {
        return Err(Error::invalid(
            "name",
            "must be 1 to 100 letters, digits, `-`, `_` or `.`",
        ));
    }
    Ok(())
}

/// A toxic as a proxy holds it: its revision changes whenever it is changed, so that a
/// connection knows to draw its toxicity again.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    pub toxic: Toxic,
    pub revision: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn new_toxic(body: Value) -> Result<Toxic, Error> {
        serde_json::from_value::<NewToxic>(body)
            .unwrap()
            .into_toxic()
    }

    fn field(err: Error) -> String {
        match err {
            Error::Invalid { field, .. } => field,
            other => panic!("not an invalid field: {other:?}"),
        }
    }

    #[test]
    fn a_toxic_left_to_its_defaults_is_named_after_its_type_and_stream() {
        let toxic = new_toxic(json!({"type": "latency", "attributes": {"latency": 300}})).unwrap();
        assert_eq!(
            serde_json::to_value(&toxic).unwrap(),
            json!({
                "name": "latency_downstream",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"latency": 300, "jitter": 0},
            })
        );
    }

    #[test]
    fn an_attribute_of_another_type_is_refused_by_name() {
        let err = new_toxic(json!({"type": "timeout", "attributes": {"latency": 300}}));
        assert_eq!(field(err.unwrap_err()), "attributes/latency");
    }

    #[test]
    fn attributes_are_whole_milliseconds_up_to_a_minute() {
        for bad in [json!(-1), json!(1.5), json!("300"), json!(MAX_MS + 1)] {
            let err = new_toxic(json!({"type": "latency", "attributes": {"jitter": bad}}));
            assert_eq!(field(err.unwrap_err()), "attributes/jitter");
        }
    }

    #[test]
    fn toxicity_is_a_probability() {
        let err = new_toxic(json!({"type": "reset_peer", "toxicity": 1.5}));
        assert_eq!(field(err.unwrap_err()), "toxicity");
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let toxic = new_toxic(json!({
            "type": "latency", "toxicity": 0.5, "attributes": {"latency": 300, "jitter": 20}
        }))
        .unwrap();
        let update: ToxicUpdate =
            serde_json::from_value(json!({"attributes": {"latency": 900}})).unwrap();
        let updated = update.apply(&toxic).unwrap();
        assert_eq!(
            updated.kind,
            ToxicKind::Latency {
                latency: 900,
                jitter: 20
            }
        );
        assert_eq!(updated.toxicity, 0.5);
    }

    #[test]
    fn an_update_cannot_move_a_toxic_to_the_other_stream() {
        let toxic = new_toxic(json!({"type": "latency"})).unwrap();
        let update: ToxicUpdate = serde_json::from_value(json!({"stream": "upstream"})).unwrap();
        assert_eq!(field(update.apply(&toxic).unwrap_err()), "stream");
    }
}
