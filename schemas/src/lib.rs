//! The data model of clot: Arrow schemas of every component column and every Parquet table the
//! project writes, the schema version carried in file metadata, and the Arrow-backed component
//! newtypes that stages read and replace.
//!
//! * [`tables`]: one [`Table`] per Parquet file kind (dataset frames, predictions, per-video
//!   metrics, run summary, training curve, sweep trial), its schema, and [`check_schema`] which
//!   names the column and the expected vs found type when a file does not match.
//! * [`components`]: immutable bevy_ecs components over Arrow arrays ([`FrameFeatures`],
//!   [`Labels`], [`Mask`], [`FrameEmbeddings`], [`TransportPlan`], ...). Each is validated once when
//!   built; a video's N×D block is then one contiguous `&[f32]`, with no copy.
//!
//! Everything a user needs is in [`prelude`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod components;
pub mod error;
pub mod tables;

pub use components::{
    F32Matrix, FrameEmbeddings, FrameFeatures, Labels, Mask, RefinedFrames, RefinedPlan,
    SegmentEmbeddings, SegmentPlan, TransportPlan, VideoId,
};
pub use error::SchemaError;
pub use tables::{
    KEY_ADAPTER, KEY_CRATE_VERSION, KEY_DEVICE, KEY_MATRIX_KIND, KEY_SCHEMA_VERSION, KEY_TABLE,
    SCHEMA_VERSION, SchemaInfo, Table, check_schema, features_field, matrix_type,
};

/// One import for users: `use clot_schemas::prelude::*;`.
pub mod prelude {
    pub use crate::components::{
        F32Matrix, FrameEmbeddings, FrameFeatures, Labels, Mask, RefinedFrames, RefinedPlan,
        SegmentEmbeddings, SegmentPlan, TransportPlan, VideoId,
    };
    pub use crate::error::SchemaError;
    pub use crate::tables::{SCHEMA_VERSION, Table, check_schema};
}
