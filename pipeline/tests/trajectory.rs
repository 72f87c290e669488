//! The whole training loop against the PyTorch peer, step by step: a coffee run recorded with
//! `clot train --record-draws` and replayed by `bench/python/trajectory_peer.py` with the same
//! draws agrees in every loss term and parameter (clot and asot mode). Needs python3 with torch
//! and the shared coffee videos; skips without them unless `CLOT_REQUIRE_TORCH=1` /
//! `CLOT_REQUIRE_SHARED=1` (CI sets both). Also: recording changes no result.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{json, s};

fn torch() -> bool {
    let required = std::env::var("CLOT_REQUIRE_TORCH").is_ok_and(|v| v == "1");
    let probe = Command::new("python3")
        .args(["-c", "import torch, safetensors, numpy"])
        .output();
    if probe.as_ref().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(
        !required,
        "CLOT_REQUIRE_TORCH=1 but python3 with torch is missing"
    );
    eprintln!("SKIP: python3 with torch and safetensors not found");
    false
}

fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/python/trajectory_peer.py")
}

fn check_mode(mode: &str) {
    let Some(root) = clot_datasets::shared::require(&["data/Breakfast"]) else {
        return;
    };
    if !torch() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = root.join("data");
    let args: Vec<String> = [
        "--data",
        s(&data),
        "--dataset",
        "Breakfast",
        "--activity",
        "coffee",
        "--preset",
        "breakfast",
        "--seed",
        "0",
        "--mode",
        mode,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let c = clot_pipeline::trajectory::record_and_replay(
        std::path::Path::new(env!("CARGO_BIN_EXE_clot")),
        "python3",
        &peer_script(),
        &args,
        &data.join("Breakfast"),
        tmp.path(),
    )
    .unwrap();
    eprintln!("{mode}:\n{}", c.table());
    // 5 videos in batches of 2, 15 epochs
    assert_eq!(c.steps.len(), 45, "{mode}");
    for st in &c.steps[..20] {
        assert!(st.loss_rel < 1e-4, "{mode} step {}: {st:?}", st.step);
    }
    let first = &c.steps[0];
    assert!(first.param_conditioned < 1e-5, "{mode} step 1: {first:?}");
    // rounding-decided first Adam steps are rare: under 1 % of the parameters
    assert!(
        first.noise_elements.0 * 100 < first.noise_elements.1,
        "{mode}: {first:?}"
    );
    // and over the whole run nothing separates beyond float rounding
    assert_eq!(c.separation(1e-4, 1e-4), None, "{mode}");
    assert!(!c.details.is_empty(), "{mode}: no stage outputs compared");
    for d in &c.details {
        assert!(d.max_abs <= 1e-4 * d.scale.max(1.0), "{mode}: {d:?}");
    }
    let (agree, all) = c.eval_agree;
    assert!(
        all == 3350 && agree * 1000 >= all * 999,
        "{mode}: {agree} of {all}"
    );
}

#[test]
fn clot_mode_replays_step_by_step_in_pytorch() {
    check_mode("clot");
}

#[test]
fn asot_mode_replays_step_by_step_in_pytorch() {
    check_mode("asot");
}

/// `--record-draws` writes the draws and changes nothing the run computes.
#[test]
fn recording_the_draws_changes_no_result() {
    let tmp = tempfile::tempdir().unwrap();
    let draws = tmp.path().join("draws.safetensors");
    let base = ["-q", "train", "--epochs", "2", "--json", "--out"];
    let run = |out: &str, extra: &[&str]| {
        let mut a = base.to_vec();
        let out = tmp.path().join(out);
        a.push(s(&out));
        a.extend_from_slice(extra);
        let mut v = json(&a);
        v.as_object_mut()
            .unwrap()
            .retain(|k, _| ["scores", "final_loss", "config"].contains(&k.as_str()));
        v
    };
    let plain = run("plain", &[]);
    let recorded = run("recorded", &["--record-draws", s(&draws)]);
    assert_eq!(plain, recorded);
    let bytes = std::fs::read(&draws).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().map(|n| n.to_string()).collect();
    // the demo: 16 videos, batches of 2, 2 epochs = 16 steps
    for want in [
        "init/clusters",
        "init/mlp.0.weight",
        "epoch1/order",
        "step16/frames/1",
        "step16/swd/1",
        "step16/dropout/1/0/cross_attn",
        "step16/param/query_pos",
        "step1/grad/clusters",
        "step1/fwd/0/refined_plan",
        "step1/cost/ot1/0",
        "eval/15/pred",
        "eval/15/swd/0",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert!(meta["clot.config"].contains("mode = \"clot\""));
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&meta["clot.videos"])
            .unwrap()
            .len(),
        16
    );
}
