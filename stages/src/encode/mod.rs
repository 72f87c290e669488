//! The encode stage (Phase::Encode, differentiable): E = normalize(MLP(X)) for each batch video.
//!
//! Reads [`Input`] and the `mlp.*` tensors of [`Params`]; writes `FrameEmbeddings` (N×d) and, in
//! training, an [`EncodeCache`] for the backward pass, which turns [`EmbeddingGrad`] into the
//! MLP's parameter gradients. The kernel is in [`kernel`]. Cost O(N·Σ fan_in·fan_out) per video.

pub mod kernel;
#[cfg(feature = "wgpu")]
pub mod kernel_gpu;

use bevy_ecs::prelude::*;
use clot_schemas::FrameEmbeddings;
use rand::{Rng, RngExt};
use rayon::prelude::*;

use crate::batch::{Batch, EmbeddingGrad, Input, ModelConfig};
use crate::graph::{
    Backward, Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo, add_cpu_gpu,
};
use crate::params::{Grads, ParamSet, Params};
use kernel::{LinearRef, MlpCache};

/// The name of layer `l`'s weight: `mlp.{2l}.weight` (ReLUs take the odd indices, as in the
/// reference's `nn.Sequential`).
pub fn weight_name(l: usize) -> String {
    format!("mlp.{}.weight", 2 * l)
}

/// The name of layer `l`'s bias.
pub fn bias_name(l: usize) -> String {
    format!("mlp.{}.bias", 2 * l)
}

/// Adds the MLP's tensors for `widths` (input first) to `params`, initialised as PyTorch's
/// `nn.Linear`: weights and biases uniform in ±1/√fan_in.
pub fn init_params(params: &mut ParamSet, widths: &[usize], rng: &mut impl Rng) {
    for (l, w) in widths.windows(2).enumerate() {
        let (fan_in, fan_out) = (w[0], w[1]);
        let bound = 1.0 / (fan_in as f32).sqrt();
        let weights = (0..fan_in * fan_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        params.push(weight_name(l), vec![fan_out, fan_in], weights);
        let bias = (0..fan_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        params.push(bias_name(l), vec![fan_out], bias);
    }
}

/// The MLP layers of `params` for `widths`, or the name of a missing/mis-sized tensor.
pub fn layers<'a>(
    params: &'a ParamSet,
    widths: &[usize],
) -> Result<Vec<LinearRef<'a, f32>>, String> {
    widths
        .windows(2)
        .enumerate()
        .map(|(l, w)| {
            let get = |name: String, len: usize| match params.get(&name) {
                Some(v) if v.len() == len => Ok(v),
                Some(v) => Err(format!("{name} has {} values, expected {len}", v.len())),
                None => Err(format!("missing parameter {name}")),
            };
            Ok(LinearRef {
                w: get(weight_name(l), w[0] * w[1])?,
                b: get(bias_name(l), w[1])?,
                fan_in: w[0],
                fan_out: w[1],
            })
        })
        .collect()
}

/// Activations kept for the backward pass (transient).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct EncodeCache(pub MlpCache<f32>);

/// Encodes every video of a batch in parallel; returns (entity, E, cache) in batch order.
fn encode(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    inputs: Query<'_, '_, &Input>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("encode");
    let layers = match layers(&params.0, &cfg.widths) {
        Ok(l) => l,
        Err(e) => return failures.report("encode", e),
    };
    let mut work = Vec::with_capacity(batch.videos.len());
    for &e in &batch.videos {
        match inputs.get(e) {
            Ok(input) if input.x.cols() == cfg.widths[0] => work.push((e, input)),
            Ok(input) => {
                return failures.report(
                    "encode",
                    format!(
                        "features have D = {}, the model expects {}",
                        input.x.cols(),
                        cfg.widths[0]
                    ),
                );
            }
            Err(_) => return failures.report("encode", format!("entity {e:?} has no input")),
        }
    }
    let out: Vec<_> = work
        .par_iter()
        .map(|(e, input)| {
            (
                *e,
                kernel::forward(&layers, input.x.as_slice(), input.x.rows()),
            )
        })
        .collect();
    let d = cfg.dim();
    for (e, cache) in out {
        match FrameEmbeddings::from_vec(cache.out.clone(), d, "frame embeddings") {
            Ok(f) => {
                let mut ec = commands.entity(e);
                ec.insert(f);
                if batch.train {
                    ec.insert(EncodeCache(cache));
                }
            }
            Err(err) => failures.report("encode", err),
        }
    }
}

fn encode_backward(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut grads: ResMut<'_, Grads>,
    q: Query<'_, '_, (&EncodeCache, &EmbeddingGrad)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    let _span = profile.span("encode.backward");
    let layers = match layers(&params.0, &cfg.widths) {
        Ok(l) => l,
        Err(e) => return failures.report("encode", e),
    };
    // one gradient set per video in parallel, summed in batch order (deterministic)
    let per_video: Vec<Vec<f32>> = batch
        .par_items(&q)
        .map(|(_, (cache, de))| {
            let n = cache.0.out.len() / cfg.dim().max(1);
            let mut buf: Vec<Vec<f32>> = layers
                .iter()
                .flat_map(|l| [vec![0.0; l.w.len()], vec![0.0; l.b.len()]])
                .collect();
            let mut pairs: Vec<(&mut [f32], &mut [f32])> = buf
                .chunks_exact_mut(2)
                .map(|c| {
                    let (w, b) = c.split_at_mut(1);
                    (w[0].as_mut_slice(), b[0].as_mut_slice())
                })
                .collect();
            kernel::backward(&layers, &cache.0, &de.0, n, &mut pairs, false);
            buf.concat()
        })
        .collect();
    for g in per_video {
        let mut off = 0;
        for l in 0..layers.len() {
            for name in [weight_name(l), bias_name(l)] {
                let Some(dst) = grads.0.get_mut(&name) else {
                    return failures.report("encode", format!("no gradient slot for {name}"));
                };
                for (a, b) in dst.iter_mut().zip(&g[off..]) {
                    *a += b;
                }
                off += dst.len();
            }
        }
    }
}

/// [`encode`] on the GPU: one upload of the batch's sampled frames and mask (videos padded
/// alike), the MLP over all rows at once; the result stays in [`GpuBatch`].
#[cfg(feature = "wgpu")]
#[allow(clippy::too_many_arguments)]
fn encode_gpu(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    model: Res<'_, crate::gpu::resident::GpuModel>,
    mut gb: ResMut<'_, crate::gpu::resident::GpuBatch>,
    inputs: Query<'_, '_, &Input>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    use crate::gpu::resident::GpuBatch;
    use crate::linalg_gpu::GpuMat;
    let _span = profile.span("encode");
    let dim = cfg.widths[0];
    let (mut x, mut mask, mut valid) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = None;
    for &e in &batch.videos {
        let Ok(input) = inputs.get(e) else {
            return failures.report("encode", format!("entity {e:?} has no input"));
        };
        if input.x.cols() != dim {
            return failures.report(
                "encode",
                format!(
                    "features have D = {}, the model expects {dim}",
                    input.x.cols()
                ),
            );
        }
        if *rows.get_or_insert(input.x.rows()) != input.x.rows() {
            return failures.report("encode", "the videos of a batch must be padded alike");
        }
        x.extend_from_slice(input.x.as_slice());
        mask.extend(input.mask_vec().into_iter().map(|m| f32::from(u8::from(m))));
        valid.push(input.mask.count_valid());
    }
    let rows = rows.unwrap_or(0);
    let layers = match kernel_gpu::layers(&model.params, &cfg.widths) {
        Ok(l) => l,
        Err(e) => return failures.report("encode", e),
    };
    let total = batch.videos.len() * rows;
    let done = crate::gpu::resident::submit(&model, "encode", &failures, |ops| {
        let x = GpuMat::upload(&model.ctx, "sampled frames", &x, total, dim)?;
        let mask = GpuMat::upload(&model.ctx, "mask", &mask, total, 1)?;
        let cache = kernel_gpu::forward(ops, &layers, &x)?;
        Ok::<_, crate::gpu::GpuError>((mask, cache))
    });
    if let Some((mask, cache)) = done {
        *gb = GpuBatch {
            rows,
            valid,
            mask: Some(mask),
            encode: Some(cache),
            ..GpuBatch::default()
        };
    }
}

/// [`encode_backward`] on the GPU: from dL/dE in [`crate::gpu::resident::GpuBatch`] into the
/// resident gradients.
#[cfg(feature = "wgpu")]
fn encode_backward_gpu(
    cfg: Res<'_, ModelConfig>,
    model: Res<'_, crate::gpu::resident::GpuModel>,
    gb: Res<'_, crate::gpu::resident::GpuBatch>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    let _span = profile.span("encode.backward");
    let (layers, grads) = match (
        kernel_gpu::layers(&model.params, &cfg.widths),
        kernel_gpu::layers(&model.grads, &cfg.widths),
    ) {
        (Ok(l), Ok(g)) => (l, g),
        (Err(e), _) | (_, Err(e)) => return failures.report("encode", e),
    };
    let (Some(cache), Some(de)) = (&gb.encode, &gb.levels[0].grad) else {
        return failures.report(
            "encode",
            "no embeddings or gradient on the GPU for backward",
        );
    };
    crate::gpu::resident::submit(&model, "encode", &failures, |ops| {
        kernel_gpu::backward(ops, &layers, cache, de, &grads, false)
    });
}

/// The encode stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodeStage;

impl Stage for EncodeStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "encode",
            phase: Phase::Encode,
            reads: &["Input", "Params(mlp.*)"],
            writes: &["FrameEmbeddings", "EncodeCache", "Grads(mlp.*)"],
            grad: Grad::Differentiable,
            about: "E = normalize(MLP(X)): Linear-ReLU-...-Linear, unit rows",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        add_cpu_gpu!(graph, Forward, Phase::Encode, encode, encode_gpu);
        add_cpu_gpu!(
            graph,
            Backward,
            Phase::Encode,
            encode_backward,
            encode_backward_gpu
        );
    }

    fn resident(&self) -> bool {
        true
    }
}
