//! The CLOT graph wired end to end: for a ragged, padded batch of two videos, the loss the graph
//! reports and every gradient it accumulates (MLP, A, dispatch α/β, every decoder tensor) equal the
//! f64 composition of the stage kernels given the graph's own (detached) plans. This catches a
//! stage reading a stale component (a missing sync point) or a gradient path dropped between
//! stages, which the per-kernel checks cannot see. With dropout on, the masks the decoder drew
//! are read back from the run's draw log ([`DrawLog`]) and given to the kernels.

#![allow(clippy::unwrap_used)]

mod common;

use clot_schemas::{RefinedPlan, SegmentPlan, TransportPlan};
use clot_stages::actions::{ACTIONS, ActionsStage};
use clot_stages::batch::{ClotConfig, Input, LossValue};
use clot_stages::decode::kernel::{LayerDrops, layout};
use clot_stages::decode::{self, DecodeStage};
use clot_stages::dispatch::{self, DispatchStage};
use clot_stages::encode::{self, EncodeStage};
use clot_stages::graph::StageGraph;
use clot_stages::load::LoadStage;
use clot_stages::loss::{Frames, LossStage, Refined, Segments};
use clot_stages::ot::stage::{Solve1Stage, Solve2Stage, Solve3Stage};
use clot_stages::params::{Grads, ParamSet, Params};
use clot_stages::record::{DrawLog, Values};
use clot_stages::refine::{Over, RefineStage};
use common::{Model, Setup, clot_loss};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn clot_graph_loss_and_gradients_equal_the_f64_kernels() {
    graph_equals_kernels(0.0);
}

#[test]
fn clot_graph_with_dropout_equals_the_f64_kernels_given_its_masks() {
    graph_equals_kernels(0.3);
}

/// The multipliers the decoder drew for batch slot `slot`, from the draw log.
fn logged_drops(log: &DrawLog, slot: usize, layers: usize) -> Vec<LayerDrops<f64>> {
    let get = |l: usize, site: &str| -> Vec<f64> {
        let name = format!("/dropout/{slot}/{l}/{site}");
        match &log.get(&name).unwrap_or_else(|| panic!("no {name}")).values {
            Values::F32(v) => v.iter().map(|&x| x as f64).collect(),
            other => panic!("{name}: {other:?}"),
        }
    };
    (0..layers)
        .map(|l| LayerDrops {
            self_attn: get(l, "self_attn"),
            res1: get(l, "res1"),
            cross_attn: get(l, "cross_attn"),
            res2: get(l, "res2"),
            ffn: get(l, "ffn"),
            res3: get(l, "res3"),
        })
        .collect()
}

fn graph_equals_kernels(dropout: f32) {
    let (widths, k) = (vec![6usize, 10, 8], 3usize);
    let d = 8;
    let mut clot = ClotConfig::for_actions(k);
    clot.heads = 2;
    clot.dropout = dropout;
    let shape = clot.decoder_shape(d);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut params = ParamSet::default();
    encode::init_params(&mut params, &widths, &mut rng);
    dispatch::init_params(&mut params);
    decode::init_params(&mut params, &shape, &mut rng);
    let a: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    params.push(ACTIONS, vec![k, d], a);
    params.get_mut(dispatch::ALPHA).unwrap()[0] = 1.7;
    params.get_mut(dispatch::BETA).unwrap()[0] = -0.3;

    let mut g = StageGraph::new();
    g.add_stage(LoadStage)
        .add_stage(ActionsStage)
        .add_stage(EncodeStage)
        .add_stage(DispatchStage)
        .add_stage(Solve1Stage { swd: true })
        .add_stage(DecodeStage)
        .add_stage(Solve2Stage)
        .add_stage(RefineStage(Over::Segments))
        .add_stage(Solve3Stage)
        .add_stage(LossStage(Frames))
        .add_stage(LossStage(Segments))
        .add_stage(LossStage(Refined));
    g.strict();
    g.initialize().unwrap();
    g.world.insert_resource(DrawLog::default());
    let videos = common::run_ragged_batch(&mut g, params, &widths, k, clot, &mut rng);

    let p = g.world.resource::<Params>().0.clone();
    let t64 = |name: &str| {
        p.get(name)
            .unwrap()
            .iter()
            .map(|&x| x as f64)
            .collect::<Vec<f64>>()
    };
    let mlp_names = ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"];
    let dec_names: Vec<String> = layout(&shape).into_iter().map(|(n, _)| n).collect();
    let model = Model {
        mlp: mlp_names.iter().map(|n| t64(n)).collect(),
        a: t64(ACTIONS),
        ab: vec![t64(dispatch::ALPHA)[0], t64(dispatch::BETA)[0]],
        dec: dec_names.iter().map(|n| t64(n)).collect(),
    };
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let mut loss = 0.0;
    let mut grads: Option<Model> = None;
    let log = g.world.resource::<DrawLog>().clone();
    for (slot, &e) in videos.iter().enumerate() {
        let drops = (dropout > 0.0).then(|| logged_drops(&log, slot, shape.layers));
        if let Some(dr) = &drops {
            // the masks really drop something
            assert!(dr[0].cross_attn.contains(&0.0) && dr[0].ffn.contains(&0.0));
        }
        let input = g.world.get::<Input>(e).unwrap();
        let st = Setup {
            widths: widths.clone(),
            k,
            s: shape,
            x: to64(input.x.as_slice()),
            valid: input.mask_vec(),
            t1: to64(g.world.get::<TransportPlan>(e).unwrap().as_slice()),
            t2: to64(g.world.get::<SegmentPlan>(e).unwrap().as_slice()),
            t3: to64(g.world.get::<RefinedPlan>(e).unwrap().as_slice()),
            drops,
            rows: 2 * 13,
            seg_rows: 2 * shape.queries,
        };
        let (l, gv) = clot_loss(&model, &st, true);
        loss += l;
        let gv = gv.unwrap();
        grads = Some(match grads {
            None => gv,
            Some(mut acc) => {
                let add =
                    |a: &mut Vec<f64>, b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                acc.mlp.iter_mut().zip(&gv.mlp).for_each(|(a, b)| add(a, b));
                acc.dec.iter_mut().zip(&gv.dec).for_each(|(a, b)| add(a, b));
                add(&mut acc.a, &gv.a);
                add(&mut acc.ab, &gv.ab);
                acc
            }
        });
    }
    let want = grads.unwrap();
    let got = g.world.resource::<LossValue>().total;
    assert!(
        (got - loss).abs() < 1e-4 * loss.abs().max(1.0),
        "loss {got} vs {loss}"
    );
    let gs = &g.world.resource::<Grads>().0;
    let mut bad = Vec::new();
    let mut close = |name: &str, want: &[f64]| {
        let got = gs.get(name).unwrap();
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (&x, &y)) in got.iter().zip(want).enumerate() {
            if (x as f64 - y).abs() >= 2e-3 * scale {
                bad.push(format!("{name}[{i}]: graph {x} vs kernels {y}"));
                break;
            }
        }
    };
    for (n, w) in mlp_names.iter().zip(&want.mlp) {
        close(n, w);
    }
    close(ACTIONS, &want.a);
    close(dispatch::ALPHA, &want.ab[..1]);
    close(dispatch::BETA, &want.ab[1..]);
    for (n, w) in dec_names.iter().zip(&want.dec) {
        close(n, w);
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
