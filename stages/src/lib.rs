//! The numeric stages of clot, each a CPU reference kernel (wgpu versions come behind the `wgpu`
//! feature). So far:
//!
//! * [`eval`]: Hungarian matching of predicted clusters to ground-truth classes and the
//!   mean-over-frames accuracy (MoF), activity-level and per video.
//! * [`kmeans`]: seeded k-means++ (used to initialise the action embeddings and as a baseline).
//! * [`baselines`]: trivial segmentations that any learned method must beat.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod baselines;
pub mod eval;
pub mod kmeans;
pub mod ot;
