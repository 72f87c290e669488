//! The error type of the schemas crate.

use arrow_schema::DataType;

/// What went wrong while checking a schema or building a component.
///
/// `origin` names where the data came from (a file path, or a component name for arrays built in
/// memory) so that the message says *where* as well as *what*.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A required column is absent.
    #[error("{origin}: missing column `{column}` (expected type {expected}) for a {table} table")]
    MissingColumn {
        origin: String,
        table: &'static str,
        column: String,
        expected: DataType,
    },
    /// A column has the wrong Arrow type.
    #[error("{origin}: column `{column}` has type {found}, expected {expected}")]
    ColumnType {
        origin: String,
        column: String,
        expected: DataType,
        found: DataType,
    },
    /// The file says it is a different kind of table.
    #[error("{origin}: this is a `{found}` table, expected a `{expected}` table")]
    WrongTable {
        origin: String,
        expected: &'static str,
        found: String,
    },
    /// The schema-version metadata is missing or not a number.
    #[error("{origin}: no valid `{key}` metadata (found {found:?}); not a file written by clot")]
    MissingVersion {
        origin: String,
        key: &'static str,
        found: Option<String>,
    },
    /// The file was written by a newer clot.
    #[error(
        "{origin}: schema version {found} is newer than this clot understands (version {supported}); upgrade clot"
    )]
    NewerVersion {
        origin: String,
        found: u32,
        supported: u32,
    },
    /// Array shape or content does not fit the component.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    /// A non-finite value in data that must be finite.
    #[error("{what}: non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        what: String,
        row: usize,
        col: usize,
        value: f32,
    },
}
