//! End-to-end training through the stage graph: `clot run` on the demo, determinism, checkpoint
//! round trip through `clot eval`, configuration layering and errors, and the real Breakfast
//! coffee run against the reference ASOT scores (skipped where ../shared is absent).

#![allow(clippy::unwrap_used)]

mod common;

use clot_datasets::Video;
use clot_pipeline::config::TrainConfig;
use clot_pipeline::output::read_checkpoint;
use clot_pipeline::train::{fit, score, score_with};
use clot_stages::eval::{F1Rng, Metrics};
use common::{fails, json};
use indicatif::ProgressBar;

fn demo_config(epochs: usize, seed: u64) -> TrainConfig {
    let mut c = TrainConfig::from_preset(clot_datasets::preset("demo").unwrap(), 7);
    c.mode = "asot".into();
    c.epochs = epochs;
    c.seed = seed;
    c
}

#[test]
fn run_on_the_demo_writes_a_complete_run_folder_and_beats_equal_split() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let r = json(&["run", "--out", out_s, "--json"]);
    for f in [
        "predictions.parquet",
        "video_metrics.parquet",
        "summary.parquet",
        "training_curve.parquet",
        "checkpoint.safetensors",
        "config.toml",
        "segments.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let mof = r["scores"]["activity"]["mof"].as_f64().unwrap();
    let equal = r["baseline_equal_split_mof"].as_f64().unwrap();
    assert!(
        mof > equal,
        "trained MoF {mof} should beat the equal split {equal}"
    );
    assert_eq!(r["config"]["epochs"], 15);
    assert_eq!(r["videos"], 16);
    let stages: Vec<&str> = r["profile"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["stage"].as_str().unwrap())
        .collect();
    for s in [
        "load",
        "encode",
        "dispatch",
        "ot1",
        "decode",
        "ot2",
        "refine",
        "ot3",
        "loss",
        "loss-segments",
        "loss-refined",
        "encode.backward",
        "dispatch.backward",
        "decode.backward",
        "refine.backward",
        "loss.backward",
        "loss-segments.backward",
        "loss-refined.backward",
    ] {
        assert!(stages.contains(&s), "no time recorded for {s}: {stages:?}");
    }

    // the checkpoint evaluates to exactly the run's scores
    let ckpt = out.join("checkpoint.safetensors");
    let e = json(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "demo",
        "--json",
    ]);
    assert_eq!(e["activity"], r["scores"]["activity"]);
    assert_eq!(e["video"], r["scores"]["video"]);
    let (params, cfg) = read_checkpoint(&ckpt).unwrap();
    assert_eq!(cfg.epochs, 15);
    let shape = |n: &str| {
        params
            .tensors
            .iter()
            .find(|t| t.name == n)
            .map(|t| t.shape.clone())
    };
    assert_eq!(shape("mlp.0.weight"), Some(vec![128, 64]));
    assert_eq!(shape("clusters"), Some(vec![7, 40]));
    assert_eq!(shape("dispatch.sim_beta"), Some(vec![1]));
    assert_eq!(
        shape("decoder.layers.0.multihead_attn.out_proj.weight"),
        Some(vec![40, 40])
    );
    assert_eq!(cfg.mode, "clot");
}

fn demo_videos() -> clot_datasets::Dataset {
    clot_datasets::open("demo", &clot_datasets::ReadOptions::default())
        .unwrap()
        .0
}

#[test]
fn same_seed_gives_bit_identical_predictions_and_parameters() {
    let ds = demo_videos();
    let videos: Vec<&Video> = ds.videos.iter().collect();
    let bar = ProgressBar::hidden();
    let (t1, r1, _) = fit(&demo_config(3, 5), &videos, &bar).unwrap();
    let (t2, r2, _) = fit(&demo_config(3, 5), &videos, &bar).unwrap();
    assert_eq!(
        r1, r2,
        "predictions and confidences differ between two runs"
    );
    for (a, b) in t1.params.tensors.iter().zip(&t2.params.tensors) {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.data), bits(&b.data), "{} differs", a.name);
    }
    assert_eq!(t1.curve, t2.curve);
    let (t3, r3, _) = fit(&demo_config(3, 6), &videos, &bar).unwrap();
    assert_ne!(t1.params, t3.params, "another seed must give another model");
    assert_ne!(r1, r3);
}

/// Sweeps vary the threads per trial, so a run must not depend on them: the same run on a pool
/// of 1, 2 and 3 threads gives the same bits in both graphs. With more than one thread,
/// validation (every epoch here) and evaluation run the videos on copies of the graph side by
/// side, so this also checks that those copies give the bits of one graph.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let ds = demo_videos();
    let videos: Vec<&Video> = ds.videos.iter().take(6).collect();
    for mode in ["clot", "asot"] {
        let mut cfg = demo_config(2, 3);
        cfg.mode = mode.into();
        cfg.val_every = 1;
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit(&cfg, &videos, &ProgressBar::hidden()).unwrap())
        };
        let (t1, r1, _) = on(1);
        assert!(
            t1.curve.iter().any(|c| c.val_mof.is_some()),
            "{mode}: no validation"
        );
        for threads in [2, 3] {
            let (t, r, _) = on(threads);
            assert_eq!(r1, r, "{mode}: predictions differ at {threads} threads");
            assert_eq!(
                t1.curve, t.curve,
                "{mode}: losses differ at {threads} threads"
            );
            for (a, b) in t1.params.tensors.iter().zip(&t.params.tensors) {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&a.data),
                    bits(&b.data),
                    "{mode}: {} at {threads} threads",
                    a.name
                );
            }
        }
    }
}

#[test]
fn clot_mode_is_deterministic_too() {
    // dropout masks and SWD directions come from the run's seeded RNG
    let ds = demo_videos();
    let videos: Vec<&Video> = ds.videos.iter().take(6).collect();
    let bar = ProgressBar::hidden();
    let mut cfg = demo_config(2, 1);
    cfg.mode = "clot".into();
    let (t1, r1, _) = fit(&cfg, &videos, &bar).unwrap();
    let (t2, r2, _) = fit(&cfg, &videos, &bar).unwrap();
    assert_eq!(r1, r2);
    assert_eq!(t1.params, t2.params);
    assert!(
        t1.curve
            .iter()
            .all(|c| c.loss_segments.is_some() && c.loss_refined.is_some())
    );
}

#[test]
fn validation_does_not_move_training_and_checkpoints_reproduce_every_graph() {
    let ds = demo_videos();
    let videos: Vec<&Video> = ds.videos.iter().take(5).collect();
    let bar = ProgressBar::hidden();
    let mut cfg = demo_config(2, 3);
    cfg.mode = "clot".into();
    cfg.without = vec!["refine".into()]; // predicts from T, whose cost has the SWD term
    let (t1, r1, _) = fit(&cfg, &videos, &bar).unwrap();
    cfg.val_every = 0;
    let (t2, r2, _) = fit(&cfg, &videos, &bar).unwrap();
    assert_eq!(t1.params, t2.params, "validation passes changed training");
    assert_eq!(r1, r2);
    let again = clot_pipeline::train::evaluate(&cfg, t1.params.clone(), &videos).unwrap();
    assert_eq!(
        again, r1,
        "evaluating the trained parameters again gives other predictions"
    );
}

#[test]
fn training_lowers_the_loss() {
    let ds = demo_videos();
    let videos: Vec<&Video> = ds.videos.iter().collect();
    let (t, _, _) = fit(&demo_config(10, 0), &videos, &ProgressBar::hidden()).unwrap();
    let per_epoch = |e: usize| {
        let v: Vec<f64> = t
            .curve
            .iter()
            .filter(|c| c.epoch == e)
            .map(|c| c.loss)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        per_epoch(9) < per_epoch(0),
        "{} vs {}",
        per_epoch(9),
        per_epoch(0)
    );
    assert!(t.curve.iter().all(|c| c.loss.is_finite()));
    assert!(t.curve.iter().filter(|c| c.val_mof.is_some()).count() == 10);
}

#[test]
fn config_file_and_flags_layer_and_bad_settings_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "epochs = 2\nlr = 0.002\nval_every = 0\n").unwrap();
    let out = dir.path().join("r");
    let r = json(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r["config"]["epochs"], 1, "the flag wins over the file");
    assert_eq!(
        r["config"]["lr"].as_f64().unwrap() as f32,
        0.002,
        "the file wins over the preset"
    );
    assert_eq!(
        r["config"]["rho"].as_f64().unwrap() as f32,
        0.2,
        "the preset fills the rest"
    );

    std::fs::write(&cfg, "epoch = 2\n").unwrap();
    let err = fails(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("c.toml") && err.contains("epoch"), "{err}");
    // an explicit mlp sets D: the demo's 64-d features are checked against it
    let err = fails(&["run", "--mlp", "32,16", "--out", out.to_str().unwrap()]);
    assert!(
        err.contains("feature dimension 64, expected 32") && err.contains("--mlp"),
        "{err}"
    );
    let err = fails(&["run", "--mode", "nope", "--out", out.to_str().unwrap()]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn eval_rejects_a_corrupt_checkpoint_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("bad.safetensors");
    std::fs::write(&ckpt, b"not a checkpoint").unwrap();
    let err = fails(&["eval", "--checkpoint", ckpt.to_str().unwrap(), "demo"]);
    assert!(err.contains("bad.safetensors"), "{err}");
}

/// The five Breakfast coffee videos, breakfast preset, seeds 0–4, against the reference ASOT
/// training code's scores on exactly this run (golden/asot_coffee_seeds.json).
#[test]
fn coffee_seeds_match_the_reference_asot_run() {
    let Some(root) = common::shared() else {
        return;
    };
    let golden = root.join("golden/asot_coffee_seeds.json");
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
    let p = clot_datasets::preset("breakfast").unwrap();
    let mut opts = clot_datasets::ReadOptions::for_preset(p);
    opts.activities = vec!["coffee".into()];
    let spec = root.join("data/Breakfast").display().to_string();
    let (ds, _) = clot_datasets::open_with(&spec, &opts, &|_| {}).unwrap();
    let videos: Vec<&Video> = ds.videos.iter().collect();
    let mut rows = Vec::new();
    for seed in 0..5 {
        let mut cfg = TrainConfig::from_preset(p, 7);
        cfg.mode = "asot".into();
        cfg.seed = seed;
        let (_, results, _) = fit(&cfg, &videos, &ProgressBar::hidden()).unwrap();
        let s = score(&results, cfg.exclude, cfg.f1_seed).unwrap().unwrap();
        eprintln!(
            "seed {seed}: activity MoF {:.4} F1 {:.4} mIoU {:.4} | video MoF {:.4} F1 {:.4} mIoU {:.4}",
            s.activity.mof, s.activity.f1, s.activity.miou, s.video.mof, s.video.f1, s.video.miou
        );
        rows.push(s);
    }
    let mean =
        |f: &dyn Fn(&clot_pipeline::train::Scores) -> f64| rows.iter().map(f).sum::<f64>() / 5.0;
    let ours = mean(&|s| s.activity.mof);
    let refm = g["summary"]["test_mof_full"]["mean"].as_f64().unwrap();
    let refs = g["summary"]["test_mof_full"]["std"].as_f64().unwrap();
    eprintln!("activity MoF mean {ours:.4} (reference {refm:.4} ± {refs:.4})");
    assert!(
        ours >= refm - refs,
        "mean activity MoF {ours} below {refm} − {refs}"
    );
    // CLOT on the same run, two-sided against the released CLOT components assembled with the
    // reference ASOT training code on exactly these seeds (golden/clot_coffee_seeds.json)
    let golden = root.join("golden/clot_coffee_seeds.json");
    let gc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
    let mut clot = Vec::new();
    for seed in 0..5 {
        let mut cfg = TrainConfig::from_preset(p, 7);
        cfg.seed = seed;
        let (_, results, _) = fit(&cfg, &videos, &ProgressBar::hidden()).unwrap();
        // the F1 as the reference's evaluation samples it (numpy's stream, ASOT's draw order)
        let s = score_with(&results, cfg.exclude, cfg.f1_seed, F1Rng::Numpy)
            .unwrap()
            .unwrap();
        clot.push(s.activity);
    }
    // The per-seed standard deviations of clot's activity-level scores over seeds 0–19
    // (`clot-bench fidelity --seeds 20`, coffee: MoF 0.046, F1 0.049, mIoU 0.040) and the
    // reference's over its five seeds give the standard error of the difference of two five-seed
    // means; the means must agree within three of them.
    for (key, ours_sd, get) in [
        (
            "test_mof_full",
            0.046,
            (|m: &Metrics| m.mof) as fn(&Metrics) -> f64,
        ),
        ("test_f1_full", 0.049, |m: &Metrics| m.f1),
        ("test_miou_full", 0.040, |m: &Metrics| m.miou),
    ] {
        let ours = clot.iter().map(get).sum::<f64>() / 5.0;
        let refm = gc["summary"][key]["mean"].as_f64().unwrap();
        let refs = gc["summary"][key]["std"].as_f64().unwrap();
        let se = ((ours_sd * ours_sd + refs * refs) / 5.0).sqrt();
        eprintln!(
            "clot {key}: per seed {:?}, mean {ours:.4}; reference {refm:.4} ± {refs:.4}; \
             difference {:+.4} = {:+.2} standard errors",
            clot.iter().map(get).collect::<Vec<_>>(),
            ours - refm,
            (ours - refm) / se
        );
        assert!(
            (ours - refm).abs() <= 3.0 * se,
            "clot {key}: mean {ours:.4} vs the reference {refm:.4}: more than 3 × {se:.4} apart"
        );
    }
    let ours_v = mean(&|s| s.video.mof);
    let refv = g["summary"]["test_mof_per"]["mean"].as_f64().unwrap();
    let refvs = g["summary"]["test_mof_per"]["std"].as_f64().unwrap();
    assert!(
        ours_v >= refv - refvs,
        "mean video MoF {ours_v} below {refv} − {refvs}"
    );
}

/// `--f1-rng numpy` changes only the sampled F1 (and records itself in the configuration).
#[test]
fn f1_rng_changes_only_the_sampled_f1() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut a = vec![
            "-q",
            "train",
            "--epochs",
            "1",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        json(&a)
    };
    let own = run("own", &[]);
    let np = run("numpy", &["--f1-rng", "numpy"]);
    assert_eq!(np["config"]["f1_rng"], "numpy");
    assert!(own["config"].get("f1_rng").is_none(), "{}", own["config"]);
    for level in ["activity", "video"] {
        assert_eq!(own["scores"][level]["mof"], np["scores"][level]["mof"]);
        assert_eq!(own["scores"][level]["miou"], np["scores"][level]["miou"]);
        assert_ne!(
            own["scores"][level]["f1"], np["scores"][level]["f1"],
            "{level}"
        );
    }
    let e = common::fails(&["train", "--f1-rng", "mt", "--epochs", "1"]);
    assert!(e.contains("chacha8") && e.contains("numpy"), "{e}");
}
