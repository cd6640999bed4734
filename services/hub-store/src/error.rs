//! The store's errors, sorted by what the projection does next: stop and
//! report unhealthy (open, I/O), or refuse to go on (corrupt).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened (path, permissions, lock held).
    #[error("cannot open the store: {0}")]
    Open(String),
    /// Reading or writing failed (disk full, I/O error).
    #[cfg(feature = "rocksdb")]
    #[error("store I/O failed: {0}")]
    Io(#[from] rocksdb::Error),
    /// A record does not decode.
    #[error("store record is corrupt: {0}")]
    Corrupt(String),
}
