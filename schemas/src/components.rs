//! Arrow-backed ECS components. One entity is one video; each component is one Arrow column of
//! that video, immutable once built (replace it, never mutate its buffers).
//!
//! The matrix components ([`FrameFeatures`] N×D, [`FrameEmbeddings`] N×d, [`SegmentEmbeddings`]
//! K′×d, [`RefinedFrames`] N×d, [`TransportPlan`] N×K) wrap an [`F32Matrix`]: a
//! `FixedSizeList<Float32, cols>` array without nulls whose values are one contiguous row-major
//! `&[f32]` (see [`F32Matrix::as_slice`]). Building from a `Vec<f32>` and reading the slice back are
//! both zero-copy. Validation (shape, nulls, and finiteness where the component demands it) runs
//! once in the constructor; every accessor after that is O(1).

use std::sync::Arc;

use arrow_array::{Array, BooleanArray, FixedSizeListArray, Float32Array, Int32Array};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field};
use bevy_ecs::component::Component;

use crate::error::SchemaError;

/// A row-major float32 matrix stored as `FixedSizeList<Float32, cols>`, validated: the item type is
/// Float32, and neither the lists nor the items have nulls.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Matrix {
    array: FixedSizeListArray,
}

impl F32Matrix {
    /// Wraps `array` after checking it. `what` names the data in errors (e.g. a video).
    pub fn try_new(array: FixedSizeListArray, what: &str) -> Result<Self, SchemaError> {
        let invalid = |message: String| SchemaError::Invalid {
            what: what.to_string(),
            message,
        };
        if array.value_type() != DataType::Float32 {
            return Err(invalid(format!(
                "items are {}, expected Float32",
                array.value_type()
            )));
        }
        if array.value_length() < 0 {
            return Err(invalid("negative list width".into()));
        }
        if array.null_count() > 0 {
            return Err(invalid(format!("{} null rows", array.null_count())));
        }
        let values = array.values();
        if values.len() < array.value_offset_at(array.len()) || values.null_count() > 0 {
            return Err(invalid("null or missing items in the matrix".into()));
        }
        Ok(F32Matrix { array })
    }

    /// Builds a `rows`×`cols` matrix from row-major values without copying them.
    pub fn from_vec(values: Vec<f32>, cols: usize, what: &str) -> Result<Self, SchemaError> {
        if cols == 0 || !values.len().is_multiple_of(cols) {
            return Err(SchemaError::Invalid {
                what: what.to_string(),
                message: format!("{} values do not form rows of width {cols}", values.len()),
            });
        }
        let width = i32::try_from(cols).map_err(|_| SchemaError::Invalid {
            what: what.to_string(),
            message: format!("width {cols} does not fit an Arrow list"),
        })?;
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let values = Float32Array::new(ScalarBuffer::from(values), None);
        let array =
            FixedSizeListArray::try_new(item, width, Arc::new(values), None).map_err(|e| {
                SchemaError::Invalid {
                    what: what.to_string(),
                    message: e.to_string(),
                }
            })?;
        Ok(F32Matrix { array })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.array.len()
    }

    /// Number of columns (the list width).
    pub fn cols(&self) -> usize {
        self.array.value_length() as usize
    }

    /// All values, row-major, `rows() * cols()` long. Zero-copy.
    pub fn as_slice(&self) -> &[f32] {
        let start = self.array.value_offset_at(0);
        let end = self.array.value_offset_at(self.array.len());
        let values = self.array.values();
        // Invariant checked in `try_new`/`from_vec`: the items are a non-null Float32 array.
        match values.as_any().downcast_ref::<Float32Array>() {
            Some(v) => &v.values()[start..end],
            None => &[],
        }
    }

    /// Row `i` as a slice. Panics if `i >= rows()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        let c = self.cols();
        &self.as_slice()[i * c..(i + 1) * c]
    }

    /// Rows `offset..offset + len` as a new matrix sharing the same buffer.
    pub fn slice_rows(&self, offset: usize, len: usize) -> Self {
        F32Matrix {
            array: self.array.slice(offset, len),
        }
    }

    /// The underlying Arrow array.
    pub fn array(&self) -> &FixedSizeListArray {
        &self.array
    }

    /// The first non-finite value as `(row, col, value)`, if any.
    pub fn first_non_finite(&self) -> Option<(usize, usize, f32)> {
        let c = self.cols().max(1);
        self.as_slice()
            .iter()
            .position(|v| !v.is_finite())
            .map(|p| (p / c, p % c, self.as_slice()[p]))
    }
}

macro_rules! matrix_component {
    ($(#[$doc:meta])* $name:ident, column = $column:literal, finite = $finite:expr) => {
        $(#[$doc])*
        #[derive(Component, Debug, Clone, PartialEq)]
        #[component(immutable)]
        pub struct $name(F32Matrix);

        impl $name {
            /// Wraps a validated matrix; `what` names the data in errors.
            pub fn try_new(matrix: F32Matrix, what: &str) -> Result<Self, SchemaError> {
                if $finite {
                    if let Some((row, col, value)) = matrix.first_non_finite() {
                        return Err(SchemaError::NonFinite { what: what.to_string(), row, col, value });
                    }
                }
                Ok(Self(matrix))
            }

            /// Builds from row-major values (zero-copy) and validates.
            pub fn from_vec(values: Vec<f32>, cols: usize, what: &str) -> Result<Self, SchemaError> {
                Self::try_new(F32Matrix::from_vec(values, cols, what)?, what)
            }

            /// The matrix.
            pub fn matrix(&self) -> &F32Matrix {
                &self.0
            }

            /// The column name of this component in Arrow/Parquet output.
            pub const COLUMN: &'static str = $column;

            /// The Arrow field of this component's column: `FixedSizeList<Float32, cols>`.
            pub fn field(&self) -> Field {
                Field::new($column, crate::tables::matrix_type(self.0.cols() as i32), false)
            }
        }

        impl std::ops::Deref for $name {
            type Target = F32Matrix;
            fn deref(&self) -> &F32Matrix {
                &self.0
            }
        }
    };
}

matrix_component!(
    /// Input features of one video, N×D, all finite.
    FrameFeatures, column = "features", finite = true
);
matrix_component!(
    /// Frame embeddings F of one video, N×d.
    FrameEmbeddings, column = "embedding", finite = false
);
matrix_component!(
    /// Segment embeddings S of one video, K′×d.
    SegmentEmbeddings, column = "segment_embedding", finite = false
);
matrix_component!(
    /// Refined frame embeddings F_R of one video, N×d.
    RefinedFrames, column = "refined_embedding", finite = false
);
matrix_component!(
    /// A transport plan of one video, N×K; valid rows sum to 1, padded rows are 0.
    TransportPlan, column = "plan", finite = false
);
matrix_component!(
    /// The OT2 plan T_S of one video's segments, K′×K; rows sum to 1.
    SegmentPlan, column = "segment_plan", finite = false
);
matrix_component!(
    /// The OT3 plan T_R of one video's refined frames, N×K; valid rows sum to 1, padded rows 0.
    RefinedPlan, column = "refined_plan", finite = false
);

/// Per-frame integer labels (ground-truth ids or predictions) without nulls.
#[derive(Component, Debug, Clone, PartialEq)]
#[component(immutable)]
pub struct Labels(Int32Array);

impl Labels {
    /// Wraps `array`, which must have no nulls.
    pub fn try_new(array: Int32Array, what: &str) -> Result<Self, SchemaError> {
        if array.null_count() > 0 {
            return Err(SchemaError::Invalid {
                what: what.to_string(),
                message: format!("{} null labels", array.null_count()),
            });
        }
        Ok(Labels(array))
    }

    /// Zero-copy from a vector.
    pub fn from_vec(values: Vec<i32>) -> Self {
        Labels(Int32Array::new(ScalarBuffer::from(values), None))
    }

    /// The labels as a slice.
    pub fn as_slice(&self) -> &[i32] {
        self.0.values()
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a video with no frames.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying Arrow array.
    pub fn array(&self) -> &Int32Array {
        &self.0
    }

    /// The Arrow field of a labels column named `name` (`label`, `prediction`, `ground_truth`).
    pub fn field(name: &str) -> Field {
        Field::new(name, DataType::Int32, false)
    }
}

/// Per-frame validity of a padded batch row: `true` for real frames, `false` for padding.
#[derive(Component, Debug, Clone, PartialEq)]
#[component(immutable)]
pub struct Mask(BooleanArray);

impl Mask {
    /// A mask with `valid` true entries followed by `len - valid` false ones.
    pub fn prefix(valid: usize, len: usize) -> Self {
        Mask(BooleanArray::from_iter((0..len).map(|i| Some(i < valid))))
    }

    /// Wraps `array`, which must have no nulls.
    pub fn try_new(array: BooleanArray, what: &str) -> Result<Self, SchemaError> {
        if array.null_count() > 0 {
            return Err(SchemaError::Invalid {
                what: what.to_string(),
                message: "a mask cannot contain nulls".into(),
            });
        }
        Ok(Mask(array))
    }

    /// Whether frame `i` is valid.
    pub fn is_valid(&self, i: usize) -> bool {
        self.0.value(i)
    }

    /// Number of valid frames.
    pub fn count_valid(&self) -> usize {
        self.0.true_count()
    }

    /// Length including padding.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the mask is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying Arrow array.
    pub fn array(&self) -> &BooleanArray {
        &self.0
    }

    /// The Arrow field of the mask column.
    pub fn field() -> Field {
        Field::new("mask", DataType::Boolean, false)
    }
}

/// Identity of a video entity: its name and activity.
#[derive(Component, Debug, Clone, PartialEq, Eq, Hash)]
#[component(immutable)]
pub struct VideoId {
    /// The video name (file stem in the standard layout).
    pub name: Arc<str>,
    /// The activity the video belongs to.
    pub activity: Arc<str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_is_zero_copy_and_shaped() {
        let v: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let ptr = v.as_ptr();
        let m = F32Matrix::from_vec(v, 4, "t").expect("valid");
        assert_eq!((m.rows(), m.cols()), (3, 4));
        assert_eq!(m.as_slice().as_ptr(), ptr, "no copy");
        assert_eq!(m.row(1), &[4.0, 5.0, 6.0, 7.0]);
        let s = m.slice_rows(1, 2);
        assert_eq!(s.as_slice(), &[4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        assert_eq!(s.row(1)[0], 8.0);
        assert!(F32Matrix::from_vec(vec![1.0; 5], 2, "t").is_err());
        assert!(F32Matrix::from_vec(vec![], 0, "t").is_err());
        let empty = F32Matrix::from_vec(vec![], 3, "t").expect("empty ok");
        assert_eq!(empty.rows(), 0);
        assert!(empty.as_slice().is_empty());
    }

    #[test]
    fn features_reject_non_finite_with_position() {
        let mut v = vec![0.5f32; 6];
        v[4] = f32::NAN;
        let err = FrameFeatures::from_vec(v.clone(), 3, "video P03")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("video P03") && err.contains("row 1, column 1"),
            "{err}"
        );
        // embeddings may hold anything (a diverging run is reported by its stage, not here)
        assert!(FrameEmbeddings::from_vec(v, 3, "e").is_ok());
    }

    #[test]
    fn matrix_rejects_nulls_and_wrong_item_type() {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let values = Float32Array::from(vec![Some(1.0), None]);
        let a = FixedSizeListArray::try_new(item, 2, Arc::new(values), None).expect("arrow");
        assert!(F32Matrix::try_new(a, "t").is_err());
        let item = Arc::new(Field::new("item", DataType::Int32, false));
        let a = FixedSizeListArray::try_new(item, 1, Arc::new(Int32Array::from(vec![1])), None)
            .expect("arrow");
        let msg = F32Matrix::try_new(a, "t").unwrap_err().to_string();
        assert!(msg.contains("Int32"), "{msg}");
    }

    #[test]
    fn labels_and_mask() {
        let l = Labels::from_vec(vec![0, 2, 2, -1]);
        assert_eq!(l.as_slice(), &[0, 2, 2, -1]);
        assert!(Labels::try_new(Int32Array::from(vec![Some(1), None]), "t").is_err());
        let m = Mask::prefix(3, 5);
        assert_eq!(m.count_valid(), 3);
        assert!(m.is_valid(2) && !m.is_valid(3));
    }

    #[test]
    fn components_live_in_a_world() {
        let mut world = bevy_ecs::world::World::new();
        let f = FrameFeatures::from_vec(vec![1.0, 2.0], 2, "v").expect("valid");
        let e = world
            .spawn((
                VideoId {
                    name: "v".into(),
                    activity: "a".into(),
                },
                f,
                Labels::from_vec(vec![1]),
            ))
            .id();
        let got = world.get::<FrameFeatures>(e).expect("component");
        assert_eq!(got.as_slice(), &[1.0, 2.0]);
        assert_eq!(got.field(), crate::tables::features_field(2));
        let plan = TransportPlan::from_vec(vec![0.5; 6], 3, "p").expect("plan");
        assert_eq!(plan.field().name(), "plan");
        assert_eq!(plan.field().data_type(), &crate::tables::matrix_type(3));
        assert_eq!(Mask::field().data_type(), &DataType::Boolean);
    }
}
