//! The OT stages (detached; SPEC §2): each builds a cost against the action embeddings A and
//! solves all videos of the batch in one batched ASOT call (the automatic step couples the batch,
//! as in the reference); training batches use the train settings (ε, α, λ_a), evaluation the
//! eval ones.
//!
//! * OT1 (Phase::Solve1): T = ASOT(1 − F Aᵀ + ρ·R(N,K) [+ w_swd·C_swd(F, A)]) → `TransportPlan`.
//!   The SWD directions are drawn fresh per call and per video: from the run's RNG in training,
//!   from a per-video seeded RNG at evaluation; a [`DrawLog`] records them as `swd/<slot>`, and
//!   each level's costs as `cost/<level>/<slot>`.
//! * OT2 (Phase::Solve2): T_S = ASOT(1 − S Aᵀ + ρ·R(K′,K)) → `SegmentPlan` (all rows valid).
//! * OT3 (Phase::Solve3): T_R = ASOT(1 − F_R Aᵀ + ρ·R(N,K)) → `RefinedPlan`.
//!
//! Cost: the cost matrix O(rows·K·d) (+ O(P·(N+K)·d + P·N log²N + N·K·P) for SWD), the solver
//! O(iters·rows·K) per video.

use std::ops::Deref;

use bevy_ecs::prelude::*;
use clot_schemas::{
    F32Matrix, FrameEmbeddings, RefinedFrames, RefinedPlan, SegmentEmbeddings, SegmentPlan,
    TransportPlan,
};

use crate::actions::ACTIONS;
use crate::batch::{Batch, Input, ModelConfig, OtObjective, RunRng, VideoIndex};
use crate::gpu::{Compute, ComputeDevice};
use crate::graph::{
    Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo, add_cpu_gpu,
};
use crate::ot::cost::{add_temporal_prior, cosine_cost, random_directions, swd_cost};
use crate::ot::{AsotParams, objective, solve_batch_on};
use crate::params::Params;
use crate::record::DrawLog;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Costs of the batch's videos (B×rows×K, built in parallel) and their valid rows, or an error
/// message. `extra(v, embeddings, cost)` adds further terms to video v's cost.
fn batch_costs<E: Component + Deref<Target = F32Matrix>>(
    batch: &Batch,
    cfg: &ModelConfig,
    a: &[f32],
    q: &Query<'_, '_, (&E, &Input)>,
    frames: bool,
    extra: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) -> Result<(Vec<f32>, Vec<usize>, usize), String> {
    let (k, d) = (cfg.actions, cfg.dim());
    let mut items = Vec::with_capacity(batch.videos.len());
    for &e in &batch.videos {
        items.push(
            q.get(e)
                .map_err(|_| format!("entity {e:?} has no embeddings"))?,
        );
    }
    let rows = items.first().map_or(0, |(emb, _)| emb.rows());
    let costs: Vec<Vec<f32>> = items
        .par_iter()
        .enumerate()
        .map(|(v, (emb, _))| {
            let mut c = cosine_cost(emb.as_slice(), a, d);
            add_temporal_prior(&mut c, rows, k, cfg.rho);
            extra(v, emb.as_slice(), &mut c);
            c
        })
        .collect();
    let valid = items
        .iter()
        .map(|(emb, input)| valid_rows(emb, input, frames))
        .collect();
    Ok((costs.concat(), valid, rows))
}

/// The rows of a video the solver treats as real: the mask's valid frames at a frame level,
/// every row at the segment level.
fn valid_rows(emb: &F32Matrix, input: &Input, frames: bool) -> usize {
    if frames {
        input.mask.count_valid()
    } else {
        emb.rows()
    }
}

/// The batch's embeddings (B×rows×d, concatenated), their valid rows and the row count, for the
/// GPU path that builds the cost where it solves.
#[cfg(feature = "wgpu")]
fn batch_embeddings<E: Component + Deref<Target = F32Matrix>>(
    batch: &Batch,
    q: &Query<'_, '_, (&E, &Input)>,
    frames: bool,
) -> Result<(Vec<f32>, Vec<usize>, usize), String> {
    let mut f = Vec::new();
    let mut valid = Vec::with_capacity(batch.videos.len());
    let mut rows = None;
    for &e in &batch.videos {
        let (emb, input) = q
            .get(e)
            .map_err(|_| format!("entity {e:?} has no embeddings"))?;
        if *rows.get_or_insert(emb.rows()) != emb.rows() {
            return Err(format!(
                "videos of one batch must be padded alike: {} rows and {}",
                rows.unwrap_or(0),
                emb.rows()
            ));
        }
        f.extend_from_slice(emb.as_slice());
        valid.push(valid_rows(emb, input, frames));
    }
    Ok((f, valid, rows.unwrap_or(0)))
}

/// Costs and plans of a level without extra cost terms: on wgpu the cost is built on the GPU in
/// front of the solve (`asot_gpu::solve_embeddings`, no round trip); on the CPU as before.
#[allow(clippy::type_complexity)]
fn plain_costs_and_plans<E: Component + Deref<Target = F32Matrix>>(
    batch: &Batch,
    cfg: &ModelConfig,
    a: &[f32],
    q: &Query<'_, '_, (&E, &Input)>,
    frames: bool,
    compute: &Compute,
) -> Result<(Vec<f32>, Vec<f32>, Vec<usize>, usize), String> {
    let params = cfg.ot(batch.train);
    #[cfg(feature = "wgpu")]
    if let Compute::Wgpu(ctx) = compute {
        let (f, valid, rows) = batch_embeddings(batch, q, frames)?;
        let shape = (valid.len(), rows, cfg.dim(), cfg.actions);
        let (costs, plans) =
            crate::ot::asot_gpu::solve_embeddings(ctx, &f, a, shape, cfg.rho, &valid, params)
                .map_err(|e| e.to_string())?;
        return Ok((costs, plans, valid, rows));
    }
    let (costs, valid, rows) = batch_costs(batch, cfg, a, q, frames, |_, _, _| {})?;
    let plans = solve_batch_on(
        compute,
        &costs,
        valid.len(),
        rows,
        cfg.actions,
        &valid,
        params,
    )
    .map_err(|e| e.to_string())?;
    Ok((costs, plans, valid, rows))
}

/// Inserts each video's plan; at evaluation of a frame level (`params` given) also the objective
/// at it ([`OtObjective`]): the segment level's plan is not what predictions come from.
#[allow(clippy::too_many_arguments)]
fn insert_plans<P: Component>(
    batch: &Batch,
    solved: (&[f32], &[f32], &[usize]),
    rows: usize,
    k: usize,
    params: Option<&AsotParams>,
    name: &'static str,
    make: impl Fn(Vec<f32>, usize) -> Result<P, clot_schemas::SchemaError>,
    failures: &Failures,
    commands: &mut Commands<'_, '_>,
) {
    let (costs, plans, valid) = solved;
    for (v, (&e, t)) in batch
        .videos
        .iter()
        .zip(plans.chunks_exact(rows * k))
        .enumerate()
    {
        let c = &costs[v * rows * k..(v + 1) * rows * k];
        let value = params
            .filter(|_| !batch.train)
            .map(|p| objective(c, t, rows, k, valid[v], p));
        match make(t.to_vec(), k) {
            Ok(t) => {
                let mut ent = commands.entity(e);
                ent.insert(t);
                if let Some(value) = value {
                    ent.insert(OtObjective { level: name, value });
                }
            }
            Err(err) => failures.report(name, err),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn solve1(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut log: Option<ResMut<'_, DrawLog>>,
    q: Query<'_, '_, (&FrameEmbeddings, &Input)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    device: Option<Res<'_, ComputeDevice>>,
    mut commands: Commands<'_, '_>,
) {
    solve_frames(
        &batch,
        &cfg,
        &params,
        &q,
        Vec::new(),
        log.as_deref_mut(),
        (
            &failures,
            &profile,
            device.as_deref().map_or(&Compute::Cpu, |d| &d.0),
        ),
        &mut commands,
    );
}

/// One OT level on the resident GPU batch: the cost of the level's embeddings (with OT1's SWD
/// term of `thetas`, one P×d block per video, when given) and the solve there; the plan stays
/// there for the loss (the step check comes back with the loss). At evaluation the plans and
/// costs come back, as the level's plan component (`make`) and, at a frame level, the OT
/// objective.
#[cfg(feature = "wgpu")]
#[allow(clippy::too_many_arguments)]
fn solve_on_gpu<P: Component>(
    (name, level, make): OtLevel<P>,
    batch: &Batch,
    cfg: &ModelConfig,
    model: &crate::gpu::resident::GpuModel,
    gb: &mut crate::gpu::resident::GpuBatch,
    thetas: Option<Vec<Vec<f32>>>,
    failures: &Failures,
    commands: &mut Commands<'_, '_>,
) {
    use crate::linalg_gpu::{GpuMat, Ops};
    use crate::ot::asot_gpu::{check_step, solve_resident};
    let Some(a) = model.params.get(ACTIONS) else {
        return failures.report(name, "missing parameter clusters");
    };
    let f = match gb.embeddings(level) {
        Ok(f) => f.clone(),
        Err(e) => return failures.report(name, e),
    };
    let valid = gb.valid_rows(level);
    let rows = f.rows / valid.len().max(1);
    let (k, params) = (cfg.actions, cfg.ot(batch.train));
    let frames = level != crate::graph::LossLevel::Segments;
    let run = || {
        let mut ops = Ops::new(&model.ctx, name)?;
        let swd = match &thetas {
            Some(t) => {
                let flat = t.concat();
                let (p, d) = (flat.len() / f.cols.max(1), f.cols);
                let theta = GpuMat::upload(&model.ctx, "SWD directions", &flat, p, d)?;
                let swd = &cfg.clot.swd;
                Some(crate::ot::swd_gpu::swd_cost(
                    &mut ops,
                    &f,
                    &a,
                    &theta,
                    valid.len(),
                    swd,
                )?)
            }
            None => None,
        };
        let extra = swd.as_ref().map(|t| (t, cfg.clot.swd_weight));
        let shape = (valid.len(), rows, k);
        let solved = solve_resident(&mut ops, &f, &a, shape, cfg.rho, &valid, params, extra)?;
        if batch.train {
            ops.finish(&[])?;
            return Ok((solved, None));
        }
        let out = ops.finish(&[&solved.plan, &solved.cost, &solved.state])?;
        check_step(params, &out[2])?;
        crate::ot::asot::check_finite(&out[1], rows, k)?;
        Ok::<_, crate::ot::OtError>((solved, Some(out)))
    };
    match run() {
        Ok((solved, None)) => {
            gb.level_mut(level).plan = Some(solved.plan);
            gb.step_states.push((name, solved.state));
        }
        Ok((solved, Some(out))) => {
            insert_plans(
                batch,
                (&out[1], &out[0], &valid),
                rows,
                k,
                frames.then_some(params),
                name,
                make,
                failures,
                commands,
            );
            gb.level_mut(level).plan = Some(solved.plan);
        }
        Err(e) => failures.report(name, e),
    }
}

/// An OT stage's name, loss level and plan component, for [`solve_on_gpu`].
#[cfg(feature = "wgpu")]
type OtLevel<P> = (
    &'static str,
    crate::graph::LossLevel,
    fn(Vec<f32>, usize) -> Result<P, clot_schemas::SchemaError>,
);

/// OT1's, for [`solve_on_gpu`].
#[cfg(feature = "wgpu")]
const OT1: OtLevel<TransportPlan> = ("ot1", crate::graph::LossLevel::Frames, |v, k| {
    TransportPlan::from_vec(v, k, "OT1 plan")
});

/// [`solve1_swd`] on the resident GPU batch: the directions are drawn on the CPU from the same
/// streams (one upload of B·P×d values), the SWD term is built on the GPU.
#[cfg(feature = "wgpu")]
#[allow(clippy::too_many_arguments)]
fn solve1_swd_gpu(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    model: Res<'_, crate::gpu::resident::GpuModel>,
    mut gb: ResMut<'_, crate::gpu::resident::GpuBatch>,
    mut rng: ResMut<'_, RunRng>,
    index: Query<'_, '_, &VideoIndex>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("ot1");
    let thetas = draw_directions(&batch, &cfg, &mut rng, &index, None);
    let thetas = Some(thetas);
    solve_on_gpu(
        OT1,
        &batch,
        &cfg,
        &model,
        &mut gb,
        thetas,
        &failures,
        &mut commands,
    );
}

/// The SWD directions of each batch video (P×d): in training from the run's RNG, in batch
/// order; at evaluation from an RNG seeded by the evaluation seed and the video's index. Recorded
/// as `swd/<slot>` when the run records.
fn draw_directions(
    batch: &Batch,
    cfg: &ModelConfig,
    rng: &mut RunRng,
    index: &Query<'_, '_, &VideoIndex>,
    log: Option<&mut DrawLog>,
) -> Vec<Vec<f32>> {
    let (p, d) = (cfg.clot.swd.projections, cfg.dim());
    let thetas: Vec<Vec<f32>> = batch
        .videos
        .iter()
        .enumerate()
        .map(|(pos, &e)| {
            if batch.train {
                random_directions(p, d, &mut rng.0)
            } else {
                let v = index.get(e).map_or(pos, |i| i.0) as u64;
                let mut r = ChaCha8Rng::seed_from_u64(
                    cfg.eval_seed ^ v.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                random_directions(p, d, &mut r)
            }
        })
        .collect();
    if let Some(log) = log {
        for (slot, t) in thetas.iter().enumerate() {
            log.scoped_f32(&format!("swd/{slot}"), vec![p, d], t.clone());
        }
    }
    thetas
}

/// SWD directions: in training from the run's RNG (batch order); at evaluation from an RNG seeded
/// by the run's evaluation seed and the video's index, so that evaluation never moves the
/// training stream and a checkpoint evaluates to exactly the run's scores.
#[allow(clippy::too_many_arguments)]
fn solve1_swd(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut rng: ResMut<'_, RunRng>,
    mut log: Option<ResMut<'_, DrawLog>>,
    q: Query<'_, '_, (&FrameEmbeddings, &Input)>,
    index: Query<'_, '_, &VideoIndex>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    device: Option<Res<'_, ComputeDevice>>,
    mut commands: Commands<'_, '_>,
) {
    let thetas = draw_directions(&batch, &cfg, &mut rng, &index, log.as_deref_mut());
    solve_frames(
        &batch,
        &cfg,
        &params,
        &q,
        thetas,
        log.as_deref_mut(),
        (
            &failures,
            &profile,
            device.as_deref().map_or(&Compute::Cpu, |d| &d.0),
        ),
        &mut commands,
    );
}

#[allow(clippy::too_many_arguments)]
fn solve_frames(
    batch: &Batch,
    cfg: &ModelConfig,
    params: &Params,
    q: &Query<'_, '_, (&FrameEmbeddings, &Input)>,
    thetas: Vec<Vec<f32>>,
    log: Option<&mut DrawLog>,
    (failures, profile, compute): (&Failures, &Profile, &Compute),
    commands: &mut Commands<'_, '_>,
) {
    let _span = profile.span("ot1");
    let Some(a) = params.0.get(ACTIONS) else {
        return failures.report("ot1", "missing parameter clusters");
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let params = cfg.ot(batch.train);
    let solved = if thetas.is_empty() {
        plain_costs_and_plans(batch, cfg, a, q, true, compute)
    } else {
        let swd = cfg.clot.swd;
        let weight = cfg.clot.swd_weight;
        let extra = |v: usize, f: &[f32], c: &mut [f32]| {
            if let Some(theta) = thetas.get(v) {
                let s = swd_cost(f, a, d, theta, &swd);
                c.iter_mut().zip(&s).for_each(|(x, y)| *x += weight * y);
            }
        };
        batch_costs(batch, cfg, a, q, true, extra).and_then(|(costs, valid, rows)| {
            solve_batch_on(compute, &costs, valid.len(), rows, k, &valid, params)
                .map(|plans| (costs, plans, valid, rows))
                .map_err(|e| e.to_string())
        })
    };
    match solved {
        Ok((costs, plans, valid, rows)) => {
            record_costs(log, "ot1", &costs, rows, k);
            insert_plans(
                batch,
                (&costs, &plans, &valid),
                rows,
                k,
                Some(params),
                "ot1",
                |v, k| TransportPlan::from_vec(v, k, "OT1 plan"),
                failures,
                commands,
            );
        }
        Err(e) => failures.report("ot1", e),
    }
}

/// Records each video's cost as `cost/<level>/<slot>` when the run records.
fn record_costs(log: Option<&mut DrawLog>, level: &str, costs: &[f32], rows: usize, k: usize) {
    let Some(log) = log else { return };
    for (slot, c) in costs.chunks_exact((rows * k).max(1)).enumerate() {
        log.scoped_f32(&format!("cost/{level}/{slot}"), vec![rows, k], c.to_vec());
    }
}

// the system's parameter list is its type: a bevy system with one parameter per resource/query
#[allow(clippy::type_complexity)]
fn solve_level<E: Component + Deref<Target = F32Matrix>, P: Component>(
    name: &'static str,
    frames: bool,
    make: fn(Vec<f32>, usize) -> Result<P, clot_schemas::SchemaError>,
) -> impl FnMut(
    Res<'_, Batch>,
    Res<'_, ModelConfig>,
    Res<'_, Params>,
    Option<ResMut<'_, DrawLog>>,
    Query<'_, '_, (&E, &Input)>,
    Res<'_, Failures>,
    Res<'_, Profile>,
    Option<Res<'_, ComputeDevice>>,
    Commands<'_, '_>,
) {
    move |batch, cfg, params, mut log, q, failures, profile, device, mut commands| {
        let _span = profile.span(name);
        let Some(a) = params.0.get(ACTIONS) else {
            return failures.report(name, "missing parameter clusters");
        };
        let params = cfg.ot(batch.train);
        let compute = device.as_deref().map_or(&Compute::Cpu, |d| &d.0);
        match plain_costs_and_plans(&batch, &cfg, a, &q, frames, compute) {
            Ok((costs, plans, valid, rows)) => {
                record_costs(log.as_deref_mut(), name, &costs, rows, cfg.actions);
                insert_plans(
                    &batch,
                    (&costs, &plans, &valid),
                    rows,
                    cfg.actions,
                    frames.then_some(params),
                    name,
                    make,
                    &failures,
                    &mut commands,
                );
            }
            Err(err) => failures.report(name, err),
        }
    }
}

/// [`solve_level`] on the resident GPU batch (OT1 without SWD over F, OT2 over S, OT3 over F_R):
/// the plan stays there for the loss; at evaluation it comes back as the level's component (with
/// the objective at a frame level).
#[cfg(feature = "wgpu")]
#[allow(clippy::type_complexity)]
fn solve_level_gpu<P: Component>(
    name: &'static str,
    level: crate::graph::LossLevel,
    make: fn(Vec<f32>, usize) -> Result<P, clot_schemas::SchemaError>,
) -> impl FnMut(
    Res<'_, Batch>,
    Res<'_, ModelConfig>,
    Res<'_, crate::gpu::resident::GpuModel>,
    ResMut<'_, crate::gpu::resident::GpuBatch>,
    Res<'_, Failures>,
    Res<'_, Profile>,
    Commands<'_, '_>,
) {
    move |batch, cfg, model, mut gb, failures, profile, mut commands| {
        let _span = profile.span(name);
        let what = (name, level, make);
        solve_on_gpu(
            what,
            &batch,
            &cfg,
            &model,
            &mut gb,
            None,
            &failures,
            &mut commands,
        );
    }
}

/// The OT1 stage; with `swd`, the SWD term is added to the cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solve1Stage {
    pub swd: bool,
}

impl Stage for Solve1Stage {
    fn info(&self) -> StageInfo {
        if self.swd {
            StageInfo {
                name: "ot1",
                phase: Phase::Solve1,
                reads: &[
                    "FrameEmbeddings",
                    "Input(mask)",
                    "Params(clusters)",
                    "RunRng(SWD directions)",
                ],
                writes: &["TransportPlan", "OtObjective"],
                grad: Grad::Detached,
                about: "T = ASOT(1 - F A^T + rho R + w_swd C_swd(F, A)), batched",
            }
        } else {
            StageInfo {
                name: "ot1",
                phase: Phase::Solve1,
                reads: &["FrameEmbeddings", "Input(mask)", "Params(clusters)"],
                writes: &["TransportPlan", "OtObjective"],
                grad: Grad::Detached,
                about: "T = ASOT(1 - F A^T + rho R), batched",
            }
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        if self.swd {
            add_cpu_gpu!(graph, Forward, Phase::Solve1, solve1_swd, solve1_swd_gpu);
        } else {
            add_cpu_gpu!(
                graph,
                Forward,
                Phase::Solve1,
                solve1,
                solve_level_gpu(OT1.0, OT1.1, OT1.2)
            );
        }
    }

    fn resident(&self) -> bool {
        true
    }
}

/// The OT2 stage: segments × actions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solve2Stage;

impl Stage for Solve2Stage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "ot2",
            phase: Phase::Solve2,
            reads: &["SegmentEmbeddings", "Params(clusters)"],
            writes: &["SegmentPlan"],
            grad: Grad::Detached,
            about: "T_S = ASOT(1 - S A^T + rho R(K', K)), batched",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        let make = |v, k| SegmentPlan::from_vec(v, k, "OT2 plan");
        add_cpu_gpu!(
            graph,
            Forward,
            Phase::Solve2,
            solve_level::<SegmentEmbeddings, SegmentPlan>("ot2", false, make),
            solve_level_gpu::<SegmentPlan>("ot2", crate::graph::LossLevel::Segments, make)
        );
    }

    fn resident(&self) -> bool {
        true
    }
}

/// The OT3 stage: refined frames × actions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solve3Stage;

impl Stage for Solve3Stage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "ot3",
            phase: Phase::Solve3,
            reads: &["RefinedFrames", "Input(mask)", "Params(clusters)"],
            writes: &["RefinedPlan", "OtObjective"],
            grad: Grad::Detached,
            about: "T_R = ASOT(1 - F_R A^T + rho R), batched",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        let make = |v, k| RefinedPlan::from_vec(v, k, "OT3 plan");
        add_cpu_gpu!(
            graph,
            Forward,
            Phase::Solve3,
            solve_level::<RefinedFrames, RefinedPlan>("ot3", true, make),
            solve_level_gpu::<RefinedPlan>("ot3", crate::graph::LossLevel::Refined, make)
        );
    }

    fn resident(&self) -> bool {
        true
    }
}
