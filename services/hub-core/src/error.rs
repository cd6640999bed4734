//! The one error type of the domain, its variants sorted by what the caller
//! does next: fix the request, get access, stop retrying, retry later, or
//! report a bug. `hub-runtime` maps each to exactly one gRPC status.
//!
//! No message may contain a personal identifier: messages name fields, never
//! echo their values.
//!
//! A failure of a dependency or of the hub itself (`Unavailable`,
//! `Internal`) carries a [`Detail`]: what the hub was doing, and the error
//! that stopped it kept as its `source` (a NATS timeout stays a NATS
//! error, a full disk an I/O error), built with [`Error::unavailable_from`]
//! and [`Error::internal_from`]. Its display, in logs and in the gRPC
//! message, reads `what the hub was doing: the cause`.

use std::fmt;

/// One broken rule: the field (dotted path, e.g. `person.nhs_number`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks field rules; nothing was recorded.
    #[error("invalid request: {}", join(.0))]
    Invalid(Vec<FieldViolation>),
    /// No token, or a token the hub does not know.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known caller asked for something their role or partnerships forbid.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request id was already used by this organisation for another body.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request asks for more than the hub gives one call (a batch past
    /// its limit, too many live streams for one caller); nothing past the
    /// limit was read.
    #[error("{0}")]
    ResourceExhausted(String),
    /// NATS (or another dependency) is unreachable or slow; retry later with
    /// the same request id.
    #[error("{}", .0.chain())]
    Unavailable(#[source] Detail),
    /// A setting is missing or wrong; the process cannot start.
    #[error("setting {setting}: {reason}")]
    Config { setting: String, reason: String },
    /// A bug or a corrupted record.
    #[error("internal error: {}", .0.chain())]
    Internal(#[source] Detail),
}

/// What went wrong where a dependency or the hub itself failed: what the
/// hub was doing, and the error that stopped it when there was one, kept
/// as its source (not flattened into text), so callers can walk the chain
/// and tell a NATS timeout from a full disk. Its `Display` is what the hub
/// was doing; [`Detail::chain`] adds the causes, as [`Error`]'s `Display`
/// (logs, gRPC messages) shows them.
#[derive(Debug)]
pub struct Detail {
    message: String,
    source: Option<Cause>,
}

/// The error behind a [`Detail`]: any error (or, where a dependency gives
/// only text, a `String`).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Detail {
    /// What the hub was doing, and why it failed, as one line:
    /// `reading the stream: timed out`.
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next = self.source.as_deref().map(|s| s as &dyn std::error::Error);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }

    /// The error that caused it, if one did.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Detail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for Detail {
    fn from(message: String) -> Self {
        Self {
            message,
            source: None,
        }
    }
}

impl From<&str> for Detail {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

fn join(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A single-field invalid-argument error.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// A dependency is unreachable or slow: `doing` says what the hub was
    /// doing (no personal identifier).
    pub fn unavailable(doing: impl Into<String>) -> Self {
        Error::Unavailable(Detail::from(doing.into()))
    }

    /// As [`Error::unavailable`], keeping the error that caused it as the
    /// source.
    pub fn unavailable_from(doing: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::Unavailable(Detail {
            message: doing.into(),
            source: Some(cause.into()),
        })
    }

    /// A bug or a corrupted record.
    pub fn internal(what: impl Into<String>) -> Self {
        Error::Internal(Detail::from(what.into()))
    }

    /// As [`Error::internal`], keeping the error that caused it as the
    /// source.
    pub fn internal_from(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::Internal(Detail {
            message: what.into(),
            source: Some(cause.into()),
        })
    }

    pub fn config(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[derive(Debug, thiserror::Error)]
    #[error("timed out")]
    struct TimedOut;

    #[test]
    fn a_dependency_failure_keeps_its_cause_as_the_source_and_shows_it() {
        let e = Error::unavailable_from("reading the stream", TimedOut);
        assert_eq!(e.to_string(), "reading the stream: timed out");
        let detail = e.source().expect("the detail");
        assert_eq!(detail.to_string(), "reading the stream");
        let cause = detail.source().expect("the cause");
        assert!(
            cause.downcast_ref::<TimedOut>().is_some(),
            "kept as itself, not as text"
        );

        let e = Error::internal_from("the store", TimedOut);
        assert_eq!(e.to_string(), "internal error: the store: timed out");
        let Error::Internal(d) = &e else {
            panic!("{e:?}")
        };
        assert!(d
            .cause()
            .is_some_and(|c| c.downcast_ref::<TimedOut>().is_some()));
    }

    #[test]
    fn without_a_cause_the_message_is_the_whole_story() {
        let e = Error::unavailable("the key store did not answer");
        assert_eq!(e.to_string(), "the key store did not answer");
        assert!(e.source().expect("the detail").source().is_none());
        assert_eq!(Error::internal("x").to_string(), "internal error: x");
    }
}
