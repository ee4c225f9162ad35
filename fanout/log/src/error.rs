//! What can go wrong in the log, by kind, so callers and operators see the
//! cause: a missing or wrong log key is a key problem, not "corrupted".

use crate::seal::SealError;

/// The log's error.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The embedded database failed: a disk error, a full disk, a damaged file.
    #[error("the log's storage: {0}")]
    Storage(#[from] redb::Error),
    /// A group could not be sealed or opened (keys, tampering).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The data directory could not be made.
    #[error("the log's directory: {0}")]
    Directory(std::io::Error),
    /// The file holds a log of another format than this version's.
    #[error("this log has format {found}; this version reads format {expected}")]
    Format { found: u64, expected: u64 },
    /// A replica's copy opened for another shared log, or as an embedded log.
    #[error("{0}")]
    Copy(&'static str),
}

/// The log's results.
pub type Result<T> = std::result::Result<T, LogError>;

/// redb reports each step's failure as its own type; all are storage errors.
macro_rules! storage_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for LogError {
            fn from(error: $error) -> Self {
                LogError::Storage(error.into())
            }
        }
    )*};
}

storage_errors!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
