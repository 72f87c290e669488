//! The stage graph wired end to end: ambiguous system order is an error in strict mode, and the
//! gradients the ASOT-mode graph accumulates for a ragged, padded batch equal the f64 kernels'
//! gradient of the SPEC loss (plan held fixed) for every parameter.

#![allow(clippy::unwrap_used)]

mod common;

use bevy_ecs::prelude::*;
use clot_schemas::TransportPlan;
use clot_stages::actions::{ACTIONS, ActionsStage};
use clot_stages::batch::{ClotConfig, Input, LossValue};
use clot_stages::encode::kernel::{self as enc, LinearRef};
use clot_stages::encode::{EncodeStage, init_params};
use clot_stages::graph::{Forward, Phase, StageGraph};
use clot_stages::load::LoadStage;
use clot_stages::loss::kernel as ce;
use clot_stages::loss::{Frames, LossStage};
use clot_stages::ot::stage::Solve1Stage;
use clot_stages::params::{Grads, ParamSet, Params};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Resource, Default)]
struct Counter(u32);

fn writer_a(mut c: ResMut<'_, Counter>) {
    c.0 += 1;
}

fn writer_b(mut c: ResMut<'_, Counter>) {
    c.0 *= 2;
}

#[test]
fn strict_graphs_reject_ambiguous_order_and_accept_phased_order() {
    let mut g = StageGraph::new();
    g.world.init_resource::<Counter>();
    g.add_systems(Forward, Phase::Encode, writer_a)
        .add_systems(Forward, Phase::Encode, writer_b);
    g.strict();
    let err = g.initialize().unwrap_err().to_string();
    assert!(err.contains("writer_a") || err.contains("ambigu"), "{err}");

    let mut g = StageGraph::new();
    g.world.init_resource::<Counter>();
    g.add_systems(Forward, Phase::Loss, writer_b)
        .add_systems(Forward, Phase::Encode, writer_a);
    g.strict();
    g.initialize().unwrap();
    g.forward().unwrap();
    assert_eq!(
        g.world.resource::<Counter>().0,
        2,
        "Encode runs before Loss: (0+1)*2"
    );
}

#[test]
fn graph_gradients_equal_the_f64_kernels_on_a_ragged_batch() {
    let (widths, k) = (vec![6usize, 10, 5], 4usize);
    let d = 5;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut params = ParamSet::default();
    init_params(&mut params, &widths, &mut rng);
    let a: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    params.push(ACTIONS, vec![k, d], a);

    let mut g = StageGraph::new();
    g.add_stage(LoadStage)
        .add_stage(ActionsStage)
        .add_stage(EncodeStage)
        .add_stage(Solve1Stage { swd: false })
        .add_stage(LossStage(Frames));
    g.strict();
    g.initialize().unwrap();
    let videos = common::run_ragged_batch(
        &mut g,
        params,
        &widths,
        k,
        ClotConfig::for_actions(k),
        &mut rng,
    );

    // the same loss and gradients from the f64 kernels, with the graph's (detached) plans and the
    // parameters as the graph used them (A re-normalised in the forward pass)
    let p = g.world.resource::<Params>().0.clone();
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let ws: Vec<Vec<f64>> = p.tensors.iter().map(|t| to64(&t.data)).collect();
    let layers: Vec<LinearRef<'_, f64>> = widths
        .windows(2)
        .enumerate()
        .map(|(l, wd)| LinearRef {
            w: &ws[2 * l],
            b: &ws[2 * l + 1],
            fan_in: wd[0],
            fan_out: wd[1],
        })
        .collect();
    let a64 = &ws[4];
    let rows = 2 * 13;
    let mut loss = 0.0;
    let mut gp: Vec<Vec<f64>> = ws.iter().map(|t| vec![0.0; t.len()]).collect();
    for &e in &videos {
        let input = g.world.get::<Input>(e).unwrap();
        let t = to64(g.world.get::<TransportPlan>(e).unwrap().as_slice());
        let mask = input.mask_vec();
        let n = mask.len();
        assert_eq!(n, 13);
        let cache = enc::forward(&layers, &to64(input.x.as_slice()), n);
        let probs = ce::probabilities(&cache.out, a64, n, k, d, 0.1);
        loss += ce::loss(&probs, &t, &mask, k, rows);
        let mut df = vec![0.0; n * d];
        let (head, tail) = gp.split_at_mut(4);
        ce::backward(
            &cache.out,
            a64,
            &probs,
            &t,
            &mask,
            (n, k, d),
            0.1,
            rows,
            &mut df,
            &mut tail[0],
        );
        let (l0, l1) = head.split_at_mut(2);
        let (w0, b0) = l0.split_at_mut(1);
        let (w1, b1) = l1.split_at_mut(1);
        let mut pairs = vec![
            (&mut w0[0][..], &mut b0[0][..]),
            (&mut w1[0][..], &mut b1[0][..]),
        ];
        enc::backward(&layers, &cache, &df, n, &mut pairs, false);
    }
    let got = g.world.resource::<LossValue>().total;
    assert!(
        (got - loss).abs() < 1e-4 * loss.abs().max(1.0),
        "loss {got} vs {loss}"
    );
    let grads = &g.world.resource::<Grads>().0;
    for (t, want) in grads.tensors.iter().zip(&gp) {
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (&x, &y)) in t.data.iter().zip(want).enumerate() {
            assert!(
                (x as f64 - y).abs() < 1e-3 * scale,
                "{}[{i}]: graph {x} vs kernels {y}",
                t.name
            );
        }
    }
}
