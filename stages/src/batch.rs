//! What the stages of a batch share: the batch itself, the run's settings and RNG (resources),
//! and the per-video components a batch adds to its entities.
//!
//! The driver (in `clot-pipeline`) fills [`Batch`] before each forward pass; the load stage then
//! puts an [`Input`] on each of the batch's video entities, later stages replace their own
//! outputs (`FrameEmbeddings`, `TransportPlan`, [`Prediction`], …) on the same entities.

use bevy_ecs::prelude::*;
use clot_schemas::{FrameFeatures, Labels, Mask};
use rand_chacha::ChaCha8Rng;

use crate::ot::AsotParams;
use crate::sample::Sampling;

/// The videos of the current batch, in batch order, and how to sample them.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct Batch {
    pub videos: Vec<Entity>,
    pub sampling: Sampling,
    /// Training (train OT settings, caches for backward) or evaluation.
    pub train: bool,
}

/// The settings the stages read (a resource). Parameters live in [`crate::params::Params`].
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Number of actions K.
    pub actions: usize,
    /// MLP widths, input first (the last is the embedding size d).
    pub widths: Vec<usize>,
    /// Softmax temperature τ.
    pub temperature: f32,
    /// Weight ρ of the temporal prior.
    pub rho: f32,
    /// Per-video standardisation of the sampled features.
    pub standardise: bool,
    /// OT settings in training.
    pub ot_train: AsotParams,
    /// OT settings at evaluation.
    pub ot_eval: AsotParams,
}

impl ModelConfig {
    /// The embedding size d.
    pub fn dim(&self) -> usize {
        self.widths.last().copied().unwrap_or(0)
    }

    /// The OT settings for a batch.
    pub fn ot(&self, train: bool) -> &AsotParams {
        if train { &self.ot_train } else { &self.ot_eval }
    }
}

/// The run's random number generator, seeded once from the run's seed (a resource).
#[derive(Resource, Debug, Clone)]
pub struct RunRng(pub ChaCha8Rng);

/// A video's position in the dataset (a component).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[component(immutable)]
pub struct VideoIndex(pub usize);

/// The sampled, standardised input of a video in the current batch: X (S×D, padded), the mask of
/// real rows and the frame index of each row.
#[derive(Component, Debug, Clone, PartialEq)]
#[component(immutable)]
pub struct Input {
    pub x: FrameFeatures,
    pub mask: Mask,
    pub frames: Labels,
}

impl Input {
    /// The mask as booleans.
    pub fn mask_vec(&self) -> Vec<bool> {
        (0..self.mask.len())
            .map(|i| self.mask.is_valid(i))
            .collect()
    }
}

/// The argmax prediction of the last plan (a component, one label per real frame).
#[derive(Component, Debug, Clone, PartialEq)]
#[component(immutable)]
pub struct Prediction(pub Labels);

/// The loss of the last forward pass and its parts (a resource).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct LossValue {
    pub total: f64,
    /// (name, value) of each term.
    pub terms: Vec<(&'static str, f64)>,
}

/// dL/dF of a video's frame embeddings in the current backward pass (transient, so a plain
/// buffer rather than an Arrow column), N×d.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct EmbeddingGrad(pub Vec<f32>);
