//! The error type of the datasets crate. Every variant names the file (and the line, row, column or
//! video where that makes sense) and what was expected.

use std::path::PathBuf;

/// A failure to read, convert or generate a dataset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A folder or file the layout requires is absent.
    #[error("{what} not found: {}", path.display())]
    Missing { what: String, path: PathBuf },
    /// The operating system refused a read or write.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A malformed line in a mapping file.
    #[error("{}:{line}: {message}", path.display())]
    Mapping {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A ground-truth label that the mapping does not define.
    #[error("{}:{line}: label `{label}` is not in the mapping {}", path.display(), mapping.display())]
    UnknownLabel {
        path: PathBuf,
        line: usize,
        label: String,
        mapping: PathBuf,
    },
    /// A token that is not a number.
    #[error("{}:{line}: column {column}: `{token}` is not a number", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        token: String,
    },
    /// A row with a different number of values than the rows before it.
    #[error("{}:{line}: {found} values, expected {expected} like the rows before it", path.display())]
    Ragged {
        path: PathBuf,
        line: usize,
        expected: usize,
        found: usize,
    },
    /// NaN or infinity in features.
    #[error(
        "{}: row {row}, column {column}: non-finite value {value}; fix the file or opt in to zeroing non-finite values (--zero-non-finite)",
        path.display()
    )]
    NonFinite {
        path: PathBuf,
        row: usize,
        column: usize,
        value: f64,
    },
    /// Fewer feature rows than ground-truth lines.
    #[error(
        "video `{video}`: {} has {rows} feature rows but {} has {labels} labels; a video needs at least one feature row per label",
        features.display(), labels_path.display()
    )]
    TooFewFeatures {
        video: String,
        features: PathBuf,
        rows: usize,
        labels_path: PathBuf,
        labels: usize,
    },
    /// A video without frames.
    #[error("video `{video}` is empty: {}", path.display())]
    EmptyVideo { video: String, path: PathBuf },
    /// A feature dimension that differs from another video or from the preset.
    #[error("video `{video}` ({}): feature dimension {found}, expected {expected} ({reference})", path.display())]
    Dim {
        video: String,
        path: PathBuf,
        found: usize,
        expected: usize,
        reference: String,
    },
    /// An unreadable `.npy` file.
    #[error("{}: not a readable .npy feature matrix: {message}", path.display())]
    Npy { path: PathBuf, message: String },
    /// Two files claim the same video name.
    #[error("duplicate video `{video}`: {} and {}", first.display(), second.display())]
    DuplicateVideo {
        video: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// A Parquet file that cannot be read or written, or whose content is inconsistent.
    #[error("{}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    /// A schema mismatch (the message names the file, column and types).
    #[error(transparent)]
    Schema(#[from] clot_schemas::SchemaError),
    /// A name that is not in a registry.
    #[error("unknown {what} `{name}`; known: {known}")]
    Unknown {
        what: &'static str,
        name: String,
        known: String,
    },
    /// Anything else that makes the input unusable, with what and why.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

/// Result alias of this crate.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DatasetError {
    let path = path.into();
    move |source| DatasetError::Io { path, source }
}
