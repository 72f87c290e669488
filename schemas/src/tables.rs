//! Schemas of the Parquet tables clot writes, and the check a reader runs before trusting a file.
//!
//! Every file carries key-value metadata: [`KEY_TABLE`] (which [`Table`] it is),
//! [`KEY_SCHEMA_VERSION`] ([`SCHEMA_VERSION`] at the time of writing) and [`KEY_CRATE_VERSION`].
//! Version 1 is the first version; a reader accepts any version up to its own and refuses newer
//! files with a message that says to upgrade. When a later version changes a table, the migration
//! of version-1 files goes here, next to the schemas.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};

use crate::error::SchemaError;

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;
/// Metadata key: the schema version of the file.
pub const KEY_SCHEMA_VERSION: &str = "clot.schema_version";
/// Metadata key: the kind of table ([`Table::name`]).
pub const KEY_TABLE: &str = "clot.table";
/// Metadata key: the version of the crate that wrote the file.
pub const KEY_CRATE_VERSION: &str = "clot.crate_version";

/// Arrow type of an N×`cols` float32 matrix stored one row per list: `FixedSizeList<Float32, cols>`.
pub fn matrix_type(cols: i32) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), cols)
}

/// The `features` column of a dataset table for feature dimension `dim`.
pub fn features_field(dim: i32) -> Field {
    Field::new("features", matrix_type(dim), false)
}

/// The kinds of Parquet table clot writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Table {
    /// A dataset: one row per frame (`video`, `activity`, `frame`, `features`, `label`), row groups
    /// aligned to videos.
    DatasetFrames,
    /// Per-frame predictions of a run (`video`, `frame`, `prediction`, `ground_truth`, `confidence`).
    Predictions,
    /// Per-video metrics of a run.
    VideoMetrics,
    /// One row per run: configuration identity and activity-level metrics.
    RunSummary,
    /// One row per optimisation step.
    TrainingCurve,
    /// One row per trial of a hyperparameter sweep.
    SweepTrial,
    /// A per-frame matrix of one or more videos (`video`, `frame`, `values`
    /// `FixedSizeList<Float32, K>`): costs, affinities or transport plans, as [`KEY_MATRIX_KIND`]
    /// says. `clot solve` reads costs/affinities and writes plans in this form.
    FrameMatrix,
    /// One row per K tried by `--actions auto`: the score curve K̂ was read from.
    KChoice,
}

/// Metadata key of a [`Table::FrameMatrix`]: `cost`, `affinity` or `plan`.
pub const KEY_MATRIX_KIND: &str = "clot.matrix_kind";

/// Metadata key of tables a solve or run wrote: where its kernels ran, `cpu` or `wgpu`.
pub const KEY_DEVICE: &str = "clot.device";
/// Metadata key beside [`KEY_DEVICE`]: the adapter in words (`cpu` on the CPU).
pub const KEY_ADAPTER: &str = "clot.adapter";

impl Table {
    /// Every table, for registry tests and `clot inspect`.
    pub const ALL: &'static [Table] = &[
        Table::DatasetFrames,
        Table::Predictions,
        Table::VideoMetrics,
        Table::RunSummary,
        Table::TrainingCurve,
        Table::SweepTrial,
        Table::FrameMatrix,
        Table::KChoice,
    ];

    /// The value of [`KEY_TABLE`] for this table.
    pub const fn name(self) -> &'static str {
        match self {
            Table::DatasetFrames => "dataset_frames",
            Table::Predictions => "predictions",
            Table::VideoMetrics => "video_metrics",
            Table::RunSummary => "run_summary",
            Table::TrainingCurve => "training_curve",
            Table::SweepTrial => "sweep_trial",
            Table::FrameMatrix => "frame_matrix",
            Table::KChoice => "k_choice",
        }
    }

    /// Parses a [`Table::name`].
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// The columns of the table. `dim` is the width of the matrix column where the table has one
    /// (the feature dimension of [`Table::DatasetFrames`]); 0 means "any width" when checking.
    pub fn fields(self, dim: i32) -> Vec<Field> {
        use DataType::{Boolean, Float32, Float64, Int32, UInt32, UInt64, Utf8};
        let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
        match self {
            Table::DatasetFrames => vec![
                f("video", Utf8, false),
                f("activity", Utf8, false),
                f("frame", UInt32, false),
                features_field(dim),
                // null where the dataset has no ground truth
                f("label", Int32, true),
            ],
            Table::Predictions => vec![
                f("video", Utf8, false),
                f("frame", UInt32, false),
                f("prediction", Int32, false),
                f("ground_truth", Int32, true),
                // the plan's mass on the predicted action (valid rows sum to 1)
                f("confidence", Float32, false),
            ],
            Table::VideoMetrics => vec![
                f("video", Utf8, false),
                f("activity", Utf8, false),
                f("frames", UInt32, false),
                f("mof", Float64, false),
                f("f1", Float64, false),
                f("miou", Float64, false),
            ],
            Table::RunSummary => vec![
                f("run", Utf8, false),
                f("mode", Utf8, false),
                f("dataset", Utf8, false),
                f("activity", Utf8, false),
                f("seed", UInt64, false),
                f("device", Utf8, false),
                f("config_hash", Utf8, false),
                // K, and whether it was estimated without labels (`--actions auto`) over k_range
                f("actions", UInt32, false),
                f("k_estimated", Boolean, false),
                f("k_range", Utf8, true),
                f("videos", UInt32, false),
                f("skipped_videos", UInt32, false),
                f("mof", Float64, false),
                f("f1", Float64, false),
                f("miou", Float64, false),
                f("video_mof", Float64, false),
                f("video_f1", Float64, false),
                f("video_miou", Float64, false),
                f("wall_s", Float64, false),
            ],
            Table::KChoice => vec![
                f("k", UInt32, false),
                // ln W(K): within-cluster sum of squares of the segment means, the score the
                // knee is read from
                f("log_w", Float64, false),
                // mean ln W(K) of the uniform reference sets
                f("log_w_ref", Float64, false),
                // log_w_ref − log_w, the gap statistic (K̂ is its largest value only when the
                // range has fewer than three K)
                f("gap", Float64, false),
                // true on the K the run trained with
                f("chosen", Boolean, false),
                // how K̂ was read from the curve, in words (same on every row)
                f("method", Utf8, false),
            ],
            Table::TrainingCurve => vec![
                f("epoch", UInt32, false),
                f("batch", UInt32, false),
                f("step", UInt64, false),
                f("loss", Float64, false),
                f("loss_frames", Float64, false),
                f("loss_segments", Float64, true),
                f("loss_refined", Float64, true),
                // activity-level MoF on the validation crops, on the last step of each epoch
                f("val_mof", Float64, true),
            ],
            // followed by one typed column per setting (see clot-pipeline's sweep::store)
            Table::SweepTrial => vec![
                f("sweep_name", Utf8, false),
                f("trial_id", Utf8, false),
                // `ok` or `failed`
                f("status", Utf8, false),
                f("error", Utf8, true),
                f("dataset", Utf8, false),
                f("activity", Utf8, false),
                f("preset", Utf8, true),
                f("videos", UInt32, false),
                f("unscored_videos", UInt32, false),
                f("frames", UInt64, false),
                // K (the `actions` setting) was estimated without labels (`actions = "auto"`),
                // over this range of K (null when K was given)
                f("k_estimated", Boolean, false),
                f("k_range", Utf8, true),
                f("mof", Float64, true),
                f("f1", Float64, true),
                f("miou", Float64, true),
                f("video_mof", Float64, true),
                f("video_f1", Float64, true),
                f("video_miou", Float64, true),
                // distinct predicted clusters; collapsed: fewer than half of K
                f("clusters", UInt32, true),
                f("collapsed", Boolean, true),
                f("final_loss", Float64, true),
                // mean over videos of the ASOT objective at the final plans
                f("final_ot_objective", Float64, true),
                f("train_s", Float64, false),
                f("eval_s", Float64, false),
                f("wall_s", Float64, false),
                f("peak_rss_mib", Float64, true),
            ],
            Table::FrameMatrix => vec![
                f("video", Utf8, false),
                f("frame", UInt32, false),
                Field::new("values", matrix_type(dim), false),
            ],
        }
    }

    /// The Arrow schema of the table with its identifying metadata.
    pub fn schema(self, dim: i32) -> Schema {
        Schema::new(self.fields(dim)).with_metadata(self.metadata())
    }

    /// The key-value metadata every file of this table carries.
    pub fn metadata(self) -> std::collections::HashMap<String, String> {
        [
            (KEY_TABLE.to_string(), self.name().to_string()),
            (KEY_SCHEMA_VERSION.to_string(), SCHEMA_VERSION.to_string()),
            (
                KEY_CRATE_VERSION.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ]
        .into_iter()
        .collect()
    }
}

/// What [`check_schema`] learned about a file that matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// The schema version the file was written with.
    pub version: u32,
    /// The width of the table's matrix column, if it has one.
    pub dim: Option<i32>,
}

/// Checks that `found` (read from `source`, e.g. a file path) is a `table` written by a
/// compatible clot: the table name and version metadata, then every expected column by name and
/// type. Extra columns are allowed. Matrix columns may have any width; the width found is
/// returned.
pub fn check_schema(found: &Schema, table: Table, source: &str) -> Result<SchemaInfo, SchemaError> {
    let md = found.metadata();
    match md.get(KEY_TABLE) {
        Some(name) if name == table.name() => {}
        Some(name) => {
            return Err(SchemaError::WrongTable {
                origin: source.to_string(),
                expected: table.name(),
                found: name.clone(),
            });
        }
        None => {
            return Err(SchemaError::MissingVersion {
                origin: source.to_string(),
                key: KEY_TABLE,
                found: None,
            });
        }
    }
    let raw = md.get(KEY_SCHEMA_VERSION);
    let version =
        raw.and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| SchemaError::MissingVersion {
                origin: source.to_string(),
                key: KEY_SCHEMA_VERSION,
                found: raw.cloned(),
            })?;
    if version > SCHEMA_VERSION {
        return Err(SchemaError::NewerVersion {
            origin: source.to_string(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let mut dim = None;
    for expected in table.fields(0) {
        let Ok(field) = found.field_with_name(expected.name()) else {
            return Err(SchemaError::MissingColumn {
                origin: source.to_string(),
                table: table.name(),
                column: expected.name().clone(),
                expected: expected.data_type().clone(),
            });
        };
        let ok = match (expected.data_type(), field.data_type()) {
            (DataType::FixedSizeList(e, 0), DataType::FixedSizeList(f, n)) => {
                dim = Some(*n);
                e.data_type() == f.data_type()
            }
            (e, f) => e == f,
        };
        if !ok {
            return Err(SchemaError::ColumnType {
                origin: source.to_string(),
                column: expected.name().clone(),
                expected: expected.data_type().clone(),
                found: field.data_type().clone(),
            });
        }
    }
    Ok(SchemaInfo { version, dim })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_checks_against_itself_and_names_round_trip() {
        for &t in Table::ALL {
            assert_eq!(Table::from_name(t.name()), Some(t));
            let info = check_schema(&t.schema(64), t, "mem").expect("own schema");
            assert_eq!(info.version, SCHEMA_VERSION);
            let has_matrix = t
                .fields(0)
                .iter()
                .any(|f| matches!(f.data_type(), DataType::FixedSizeList(..)));
            assert_eq!(info.dim.is_some(), has_matrix, "{t:?}");
        }
        assert_eq!(Table::from_name("nope"), None);
    }

    #[test]
    fn wrong_column_type_names_column_and_types() {
        let mut fields = Table::DatasetFrames.fields(8);
        fields[2] = Field::new("frame", DataType::Int64, false);
        let schema = Schema::new(fields).with_metadata(Table::DatasetFrames.metadata());
        let err = check_schema(&schema, Table::DatasetFrames, "x.parquet").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("x.parquet") && msg.contains("`frame`"),
            "{msg}"
        );
        assert!(msg.contains("Int64") && msg.contains("UInt32"), "{msg}");
    }

    #[test]
    fn matrix_item_type_is_checked() {
        let mut fields = Table::DatasetFrames.fields(8);
        fields[3] = Field::new(
            "features",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float64, false)), 8),
            false,
        );
        let schema = Schema::new(fields).with_metadata(Table::DatasetFrames.metadata());
        let msg = check_schema(&schema, Table::DatasetFrames, "f")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`features`") && msg.contains("Float64"),
            "{msg}"
        );
    }

    #[test]
    fn missing_column_wrong_table_and_versions() {
        let fields: Vec<Field> = Table::Predictions.fields(0).into_iter().skip(1).collect();
        let schema = Schema::new(fields).with_metadata(Table::Predictions.metadata());
        let msg = check_schema(&schema, Table::Predictions, "p")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing column `video`"), "{msg}");

        let schema = Table::Predictions.schema(0);
        let msg = check_schema(&schema, Table::DatasetFrames, "p")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`predictions` table, expected a `dataset_frames`"),
            "{msg}"
        );

        let mut md = Table::Predictions.metadata();
        md.insert(KEY_SCHEMA_VERSION.into(), (SCHEMA_VERSION + 1).to_string());
        let schema = Schema::new(Table::Predictions.fields(0)).with_metadata(md.clone());
        let msg = check_schema(&schema, Table::Predictions, "p")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("newer"), "{msg}");

        md.insert(KEY_SCHEMA_VERSION.into(), "one".into());
        let schema = Schema::new(Table::Predictions.fields(0)).with_metadata(md);
        let msg = check_schema(&schema, Table::Predictions, "p")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("clot.schema_version") && msg.contains("one"),
            "{msg}"
        );

        let schema = Schema::new(Table::Predictions.fields(0));
        assert!(matches!(
            check_schema(&schema, Table::Predictions, "p"),
            Err(SchemaError::MissingVersion { .. })
        ));
    }
}
