//! What the stages of a batch share: the batch itself, the run's settings and RNG (resources),
//! and the per-video components a batch adds to its entities.
//!
//! The driver (in `clot-pipeline`) fills [`Batch`] before each forward pass; the load stage then
//! puts an [`Input`] on each of the batch's video entities, later stages replace their own
//! outputs (`FrameEmbeddings`, `TransportPlan`, [`Prediction`], …) on the same entities.

use bevy_ecs::prelude::*;
use bevy_ecs::query::{QueryData, QueryFilter, ROQueryItem};
use clot_schemas::{FrameFeatures, Labels, Mask};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::ot::AsotParams;
use crate::ot::cost::SwdParams;
use crate::sample::Sampling;

/// The videos of the current batch, in batch order, and how to sample them.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct Batch {
    pub videos: Vec<Entity>,
    pub sampling: Sampling,
    /// Training (train OT settings, caches for backward) or evaluation.
    pub train: bool,
}

impl Batch {
    /// The batch's videos that have the query's components, with their entities, on the rayon
    /// pool, in batch order (a video without them is skipped, as after a stage failed on it).
    pub fn par_items<'a, 'w, 's, D, F>(
        &'a self,
        q: &'a Query<'w, 's, D, F>,
    ) -> impl ParallelIterator<Item = (Entity, ROQueryItem<'a, 's, D>)>
    where
        D: QueryData,
        F: QueryFilter,
        Query<'w, 's, D, F>: Sync,
        ROQueryItem<'a, 's, D>: Send,
    {
        self.videos
            .par_iter()
            .filter_map(move |&e| q.get(e).ok().map(|x| (e, x)))
    }
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
    /// CLOT's settings (used by the stages CLOT adds).
    pub clot: ClotConfig,
    /// Seed of evaluation-time randomness (the SWD directions of evaluation batches).
    pub eval_seed: u64,
}

/// Settings of CLOT's stages (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClotConfig {
    /// Weight of the SWD term in OT1's cost.
    pub swd_weight: f32,
    pub swd: SwdParams,
    /// Decoder attention heads.
    pub heads: usize,
    /// Decoder layers L.
    pub decoder_layers: usize,
    /// Segment queries K′.
    pub queries: usize,
    /// Dropout probability in training.
    pub dropout: f32,
    /// Add positions to the attention values (the released code does).
    pub pos_values: bool,
    /// Temperature τ_ca of the cross-attention refinement.
    pub tau_ca: f32,
}

impl ClotConfig {
    /// The paper's settings for K actions: SWD `released` with weight 1, 4 heads, 1 layer,
    /// K′ = K, dropout 0.1, positions on values, τ_ca = 0.1.
    pub fn for_actions(k: usize) -> Self {
        ClotConfig {
            swd_weight: 1.0,
            swd: SwdParams::default(),
            heads: 4,
            decoder_layers: 1,
            queries: k,
            dropout: 0.1,
            pos_values: true,
            tau_ca: 0.1,
        }
    }

    /// The decoder's shape for embedding size `d`.
    pub fn decoder_shape(&self, d: usize) -> crate::decode::kernel::DecoderShape {
        crate::decode::kernel::DecoderShape {
            d,
            heads: self.heads,
            layers: self.decoder_layers,
            queries: self.queries,
            ffn: 4 * d,
            pos_values: self.pos_values,
        }
    }
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

/// The argmax prediction of the final plan (a component, one label per real frame) and the plan's
/// mass on it.
#[derive(Component, Debug, Clone, PartialEq)]
#[component(immutable)]
pub struct Prediction {
    pub labels: Labels,
    pub confidence: Vec<f32>,
}

/// The ASOT objective at a video's plan of an evaluation pass ([`crate::ot::objective`]), written
/// by each OT stage at evaluation; the last level solved (OT3 when refinement runs, else OT1) is
/// the one the prediction comes from and the one that stays. A label-free fit signal.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct OtObjective {
    /// `ot1`, `ot2` or `ot3`.
    pub level: &'static str,
    pub value: f64,
}

/// The loss of the last forward pass and its parts (a resource; the driver resets it before each
/// forward pass, each cross-entropy stage adds its term).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct LossValue {
    pub total: f64,
    /// (name, value) of each term.
    pub terms: Vec<(&'static str, f64)>,
}

impl LossValue {
    /// Adds a term.
    pub fn add(&mut self, name: &'static str, value: f64) {
        self.total += value;
        self.terms.push((name, value));
    }

    /// The value of term `name`.
    pub fn term(&self, name: &str) -> Option<f64> {
        self.terms.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// The gradient of the loss with respect to a video's current `FrameEmbeddings`, N×d, in the
/// backward pass (transient, so a plain buffer rather than an Arrow column). Stages replace it as
/// the pass moves back: the loss writes dL/dF, refinement and the decoder add their parts, and
/// dispatch turns it into dL/dE for the encoder.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct EmbeddingGrad(pub Vec<f32>);

/// dL/dS of a video's segment embeddings (K′×d) in the backward pass.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct SegmentGrad(pub Vec<f32>);

/// dL/dF_R of a video's refined frames (N×d) in the backward pass.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct RefinedGrad(pub Vec<f32>);
