//! The store's errors, sorted by what the projection does next: stop and
//! report unhealthy (open, I/O), or refuse to go on (corrupt).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened (path, permissions, lock held).
    #[error("cannot open the store: {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: Cause,
    },
    /// The database was closed after a failure and is not open again yet.
    #[error("cannot open the store: {0}: closed after a failure")]
    Closed(String),
    /// Reading or writing failed (disk full, I/O error).
    #[cfg(feature = "rocksdb")]
    #[error("store I/O failed: {0}")]
    Io(#[from] rocksdb::Error),
    /// A record is not what the code that wrote it writes.
    #[error("store record is corrupt: {0}")]
    Corrupt(String),
    /// A record does not decode.
    #[error("store record is corrupt: {what}: {source}")]
    Undecodable {
        what: String,
        #[source]
        source: Cause,
    },
}

/// The error underneath one of the store's.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl Error {
    /// The store at `path` could not be opened because of `source`.
    pub fn open(path: &std::path::Path, source: impl Into<Cause>) -> Self {
        Self::Open {
            path: path.display().to_string(),
            source: source.into(),
        }
    }

    /// `what` does not decode, because of `source`.
    pub fn undecodable(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::Undecodable {
            what: what.into(),
            source: source.into(),
        }
    }
}
