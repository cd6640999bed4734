//! The one error type of the domain, its variants sorted by what the caller
//! does next: fix the request, get access, stop retrying, retry later, or
//! report a bug. `hub-runtime` maps each to exactly one gRPC status.
//!
//! No message may contain a personal identifier: messages name fields, never
//! echo their values.

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
    #[error("{0}")]
    Unavailable(String),
    /// A setting is missing or wrong; the process cannot start.
    #[error("setting {setting}: {reason}")]
    Config { setting: String, reason: String },
    /// A bug or a corrupted record.
    #[error("internal error: {0}")]
    Internal(String),
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

    pub fn config(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}
