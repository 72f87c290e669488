//! The decode stage (Phase::Decode, differentiable): the parallel decoder reads each video's
//! frame embeddings F (+ sinusoidal positions, padded frames masked) with K′ learned segment
//! queries and writes S = normalize(Decoder(·)) as `SegmentEmbeddings` (K′×d), SPEC §2.
//!
//! Dropout masks are drawn from the run's RNG in batch order (training only), so a seed fixes
//! them; a [`DrawLog`] records them as `dropout/<slot>/<layer>/<site>`. Backward turns [`SegmentGrad`] into the decoder's parameter gradients and adds dL/dF to
//! [`EmbeddingGrad`]. Parameters use PyTorch's names ([`kernel::layout`]). Kernel in [`kernel`].
//! Cost per video and layer O(K′·N·d + K′·d²).

pub mod kernel;

use bevy_ecs::prelude::*;
use clot_schemas::{FrameEmbeddings, SegmentEmbeddings};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::batch::{Batch, EmbeddingGrad, Input, ModelConfig, RunRng, SegmentGrad};
use crate::graph::{
    Backward, Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo,
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
    layout(shape)
        .into_iter()
        .map(|(name, dims)| match params.get(&name) {
            Some(v) if v.len() == dims.iter().product::<usize>() => Ok(v),
            Some(v) => Err(format!(
                "{name} has {} values, expected shape {dims:?}",
                v.len()
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
    let shape = cfg.clot.decoder_shape(cfg.dim());
    if shape.heads == 0 || !shape.d.is_multiple_of(shape.heads) {
        return failures.report(
            "decode",
            format!("d = {} is not divisible by {} heads", shape.d, shape.heads),
        );
    }
    let p = match tensors(&params.0, &shape) {
        Ok(p) => p,
        Err(e) => return failures.report("decode", e),
    };
    let mut work = Vec::with_capacity(batch.videos.len());
    for &e in &batch.videos {
        let Ok((f, input)) = q.get(e) else {
            return failures.report("decode", format!("entity {e:?} has no frame embeddings"));
        };
        let drops = (batch.train && cfg.clot.dropout > 0.0).then(|| {
            let mut u = || rng.0.random::<f64>();
            (0..shape.layers)
                .map(|_| kernel::draw_drops(&shape, f.rows(), cfg.clot.dropout as f64, &mut u))
                .collect::<Vec<_>>()
        });
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
        graph
            .add_systems(Forward, Phase::Decode, decode)
            .add_systems(Backward, Phase::Decode, decode_backward);
    }
}
