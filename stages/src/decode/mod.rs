//! The decode stage (Phase::Decode, differentiable): the parallel decoder reads each video's
//! frame embeddings F (+ sinusoidal positions, padded frames masked) with K′ learned segment
//! queries and writes S = normalize(Decoder(·)) as `SegmentEmbeddings` (K′×d), SPEC §2.
//!
//! Dropout masks are drawn from the run's RNG in batch order (training only), so a seed fixes
//! them; a [`DrawLog`] records them as `dropout/<slot>/<layer>/<site>`. Backward turns [`SegmentGrad`] into the decoder's parameter gradients and adds dL/dF to
//! [`EmbeddingGrad`]. Parameters use PyTorch's names ([`kernel::layout`]). Kernel in [`kernel`].
//! Cost per video and layer O(K′·N·d + K′·d²).

pub mod kernel;
#[cfg(feature = "wgpu")]
pub mod kernel_gpu;

use bevy_ecs::prelude::*;
use clot_schemas::{FrameEmbeddings, SegmentEmbeddings};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::batch::{Batch, EmbeddingGrad, Input, ModelConfig, RunRng, SegmentGrad};
use crate::graph::{
    Backward, Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo, add_cpu_gpu,
};
use crate::linalg::add_into;
use crate::params::{Grads, ParamSet, Params};
use crate::record::DrawLog;
use kernel::{DecoderCache, DecoderShape, LayerDrops, layout};

/// Adds the decoder's tensors, initialised as the reference: matrices Xavier-uniform (the packed
/// in-projection as one 3d×d matrix), attention biases 0, FFN biases uniform(±1/√fan_in),
/// LayerNorm γ = 1, β = 0, Q_seg ~ N(0, 0.02²), Q_pos ~ N(0, 1).
pub fn init_params(params: &mut ParamSet, shape: &DecoderShape, rng: &mut impl Rng) {
    for (name, dims) in layout(shape) {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = if name == "query_embed" || name == "query_pos" {
            let std = if name == "query_embed" { 0.02 } else { 1.0 };
            (0..n)
                .map(|_| {
                    let z: f32 = StandardNormal.sample(rng);
                    z * std
                })
                .collect()
        } else if name.contains("norm") {
            vec![if name.ends_with("weight") { 1.0 } else { 0.0 }; n]
        } else if dims.len() == 2 {
            let bound = (6.0 / (dims[0] + dims[1]) as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        } else if name.contains("linear") {
            let fan_in = if name.contains("linear1") {
                shape.d
            } else {
                shape.ffn
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        } else {
            vec![0.0; n]
        };
        params.push(name, dims, data);
    }
}

/// The decoder tensors of `params` in layout order, or the missing name.
pub fn tensors<'a>(params: &'a ParamSet, shape: &DecoderShape) -> Result<Vec<&'a [f32]>, String> {
    layout_tensors(shape, |n| params.get(n), |v| v.len())
}

/// The decoder's tensors in layout order, each looked up with `get` and sized with `len`, or
/// the name of a missing or mis-sized one.
fn layout_tensors<T>(
    shape: &DecoderShape,
    get: impl Fn(&str) -> Option<T>,
    len: impl Fn(&T) -> usize,
) -> Result<Vec<T>, String> {
    layout(shape)
        .into_iter()
        .map(|(name, dims)| match get(&name) {
            Some(v) if len(&v) == dims.iter().product::<usize>() => Ok(v),
            Some(v) => Err(format!(
                "{name} has {} values, expected shape {dims:?}",
                len(&v)
            )),
            None => Err(format!("missing parameter {name}")),
        })
        .collect()
}

/// What backward needs (transient).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct DecodeCache {
    cache: DecoderCache<f32>,
    drops: Option<Vec<LayerDrops<f32>>>,
}

/// One video's dropout multipliers per layer, drawn from the run's RNG (training with dropout
/// only): the same stream on every device.
fn draw_video_drops(
    train: bool,
    cfg: &ModelConfig,
    shape: &DecoderShape,
    n: usize,
    rng: &mut RunRng,
) -> Option<Vec<LayerDrops<f32>>> {
    (train && cfg.clot.dropout > 0.0).then(|| {
        let mut u = || rng.0.random::<f64>();
        (0..shape.layers)
            .map(|_| kernel::draw_drops(shape, n, cfg.clot.dropout as f64, &mut u))
            .collect::<Vec<_>>()
    })
}

/// The decoder's shape for a forward pass, checked: d must split evenly into the heads.
fn forward_shape(cfg: &ModelConfig) -> Result<DecoderShape, String> {
    let shape = cfg.clot.decoder_shape(cfg.dim());
    if shape.heads == 0 || !shape.d.is_multiple_of(shape.heads) {
        return Err(format!(
            "d = {} is not divisible by {} heads",
            shape.d, shape.heads
        ));
    }
    Ok(shape)
}

/// The decoder's tensors of the resident parameters (or gradients), in layout order.
#[cfg(feature = "wgpu")]
fn gpu_tensors(
    set: &crate::optim_gpu::GpuParamSet,
    shape: &DecoderShape,
) -> Result<Vec<crate::linalg_gpu::GpuMat>, String> {
    layout_tensors(shape, |n| set.get(n), |m| m.len())
}

/// [`decode`] on the resident GPU batch: every video's decoder at once; S stays there. The
/// dropout multipliers are drawn on the CPU from the same stream and uploaded.
#[cfg(feature = "wgpu")]
fn decode_gpu(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    model: Res<'_, crate::gpu::resident::GpuModel>,
    mut gb: ResMut<'_, crate::gpu::resident::GpuBatch>,
    mut rng: ResMut<'_, RunRng>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    use crate::linalg_gpu::GpuMat;
    let _span = profile.span("decode");
    let shape = match forward_shape(&cfg) {
        Ok(s) => s,
        Err(e) => return failures.report("decode", e),
    };
    let p = match gpu_tensors(&model.params, &shape) {
        Ok(p) => p,
        Err(e) => return failures.report("decode", e),
    };
    let (b, n) = (gb.valid.len(), gb.rows);
    let (Ok(mem), Some(mask)) = (gb.frames().cloned(), gb.mask.clone()) else {
        return failures.report("decode", "no frame embeddings or mask on the GPU");
    };
    let drops: Option<Vec<Vec<LayerDrops<f32>>>> = (0..b)
        .map(|_| draw_video_drops(batch.train, &cfg, &shape, n, &mut rng))
        .collect();
    let done = crate::gpu::resident::submit(&model, "decode", &failures, |ops| {
        let valid = GpuMat {
            rows: b,
            cols: n,
            ..mask
        };
        let pe = kernel::positions::<f32>(n, shape.d);
        let pe = GpuMat::upload(&model.ctx, "positions", &pe, n, shape.d)?;
        let drops = match &drops {
            Some(d) => {
                let refs: Vec<&[LayerDrops<f32>]> = d.iter().map(|v| v.as_slice()).collect();
                Some(kernel_gpu::upload_drops(&model.ctx, &refs, &shape, n)?)
            }
            None => None,
        };
        let inputs = (&mem, &valid, &pe);
        let cache = kernel_gpu::forward(ops, &p, &shape, inputs, b, drops.as_deref())?;
        Ok::<_, crate::gpu::GpuError>((cache, drops))
    });
    if let Some((cache, drops)) = done {
        gb.segments = Some(crate::gpu::resident::GpuSegments {
            out: cache.out.clone(),
            queries: shape.queries,
            cache,
            drops,
        });
    }
}

/// [`decode_backward`] on the resident GPU batch: dL/dS there into the decoder's resident
/// gradients, and dL/dF added to the frames' gradient.
#[cfg(feature = "wgpu")]
fn decode_backward_gpu(
    cfg: Res<'_, ModelConfig>,
    model: Res<'_, crate::gpu::resident::GpuModel>,
    gb: Res<'_, crate::gpu::resident::GpuBatch>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    let _span = profile.span("decode.backward");
    let shape = cfg.clot.decoder_shape(cfg.dim());
    let (p, g) = match (
        gpu_tensors(&model.params, &shape),
        gpu_tensors(&model.grads, &shape),
    ) {
        (Ok(p), Ok(g)) => (p, g),
        (Err(e), _) | (_, Err(e)) => return failures.report("decode", e),
    };
    let (Some(seg), Some(ds), Some(df)) = (&gb.segments, &gb.levels[1].grad, &gb.levels[0].grad)
    else {
        return failures.report("decode", "no forward results or gradients on the GPU");
    };
    let b = gb.valid.len();
    crate::gpu::resident::submit(&model, "decode", &failures, |ops| {
        let drops = seg.drops.as_deref();
        let dmem = kernel_gpu::backward(ops, &p, &shape, &seg.cache, ds, b, drops, &g)?;
        ops.axpy(1.0, &dmem, df)
    });
}

#[allow(clippy::too_many_arguments)]
fn decode(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut rng: ResMut<'_, RunRng>,
    mut log: Option<ResMut<'_, DrawLog>>,
    q: Query<'_, '_, (&FrameEmbeddings, &Input)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("decode");
    let shape = match forward_shape(&cfg) {
        Ok(s) => s,
        Err(e) => return failures.report("decode", e),
    };
    let p = match tensors(&params.0, &shape) {
        Ok(p) => p,
        Err(e) => return failures.report("decode", e),
    };
    let mut work = Vec::with_capacity(batch.videos.len());
    for &e in &batch.videos {
        let Ok((f, input)) = q.get(e) else {
            return failures.report("decode", format!("entity {e:?} has no frame embeddings"));
        };
        let drops = draw_video_drops(batch.train, &cfg, &shape, f.rows(), &mut rng);
        if let (Some(log), Some(drops)) = (log.as_deref_mut(), &drops) {
            record_drops(log, work.len(), &shape, f.rows(), drops);
        }
        work.push((e, f, input.mask_vec(), drops));
    }
    let out: Vec<_> = work
        .into_par_iter()
        .map(|(e, f, valid, drops)| {
            let c = kernel::forward(&p, &shape, f.as_slice(), &valid, drops.as_deref());
            (e, c, drops)
        })
        .collect();
    for (e, cache, drops) in out {
        match SegmentEmbeddings::from_vec(cache.out.clone(), shape.d, "segment embeddings") {
            Ok(s) => {
                let mut ec = commands.entity(e);
                ec.insert(s);
                if batch.train {
                    ec.insert(DecodeCache { cache, drops });
                }
            }
            Err(err) => failures.report("decode", err),
        }
    }
}

/// Records the dropout multipliers of batch slot `slot` as `dropout/<slot>/<layer>/<site>`.
fn record_drops(
    log: &mut DrawLog,
    slot: usize,
    s: &kernel::DecoderShape,
    n: usize,
    drops: &[LayerDrops<f32>],
) {
    let (h, kq, d) = (s.heads, s.queries, s.d);
    for (l, dr) in drops.iter().enumerate() {
        let sites = [
            ("self_attn", vec![h, kq, kq], &dr.self_attn),
            ("res1", vec![kq, d], &dr.res1),
            ("cross_attn", vec![h, kq, n], &dr.cross_attn),
            ("res2", vec![kq, d], &dr.res2),
            ("ffn", vec![kq, s.ffn], &dr.ffn),
            ("res3", vec![kq, d], &dr.res3),
        ];
        for (site, shape, v) in sites {
            log.scoped_f32(&format!("dropout/{slot}/{l}/{site}"), shape, v.clone());
        }
    }
}

#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn decode_backward(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut grads: ResMut<'_, Grads>,
    q: Query<'_, '_, (&DecodeCache, &SegmentGrad, &EmbeddingGrad, &Input)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("decode.backward");
    let shape = cfg.clot.decoder_shape(cfg.dim());
    let p = match tensors(&params.0, &shape) {
        Ok(p) => p,
        Err(e) => return failures.report("decode", e),
    };
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(e, (c, gs, gf, input))| {
            let (g, dmem) = kernel::backward(
                &p,
                &shape,
                &c.cache,
                &gs.0,
                &input.mask_vec(),
                c.drops.as_deref(),
            );
            let mut df = gf.0.clone();
            add_into(&mut df, &dmem);
            (e, g, df)
        })
        .collect();
    let names = layout(&shape);
    for (e, g, df) in out {
        for ((name, _), gv) in names.iter().zip(&g) {
            match grads.0.get_mut(name) {
                Some(dst) => add_into(dst, gv),
                None => return failures.report("decode", format!("no gradient slot for {name}")),
            }
        }
        commands.entity(e).insert(EmbeddingGrad(df));
    }
}

/// The decoder stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeStage;

impl Stage for DecodeStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "decode",
            phase: Phase::Decode,
            reads: &[
                "FrameEmbeddings",
                "Input(mask)",
                "Params(decoder.*, query_*)",
                "RunRng(dropout)",
            ],
            writes: &[
                "SegmentEmbeddings",
                "DecodeCache",
                "EmbeddingGrad",
                "Grads(decoder.*, query_*)",
            ],
            grad: Grad::Differentiable,
            about: "S = normalize(Decoder(Q_seg, F + PE)): self-attn, cross-attn, FFN, post-norm",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        add_cpu_gpu!(graph, Forward, Phase::Decode, decode, decode_gpu);
        add_cpu_gpu!(
            graph,
            Backward,
            Phase::Decode,
            decode_backward,
            decode_backward_gpu
        );
    }

    fn resident(&self) -> bool {
        true
    }
}
