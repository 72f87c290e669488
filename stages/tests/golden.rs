//! The solver and the metrics against the reference outputs in `../shared/golden`, on the real
//! data in `../shared/data` (skips, saying so, when those folders are absent).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clot_datasets::mapping::{Mapping, parse_labels};
use clot_datasets::npy::parse_npy;
use clot_stages::eval::{
    F1Rng, activity_level, activity_level_with, hungarian, miou, segments, video_level,
};
use clot_stages::ot::{AsotParams, StepSize, solve};

fn shared() -> Option<PathBuf> {
    clot_datasets::shared::require(&["golden/golden.json", "data"])
}

fn golden(root: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(root.join("golden/golden.json")).expect("golden.json"),
    )
    .expect("json")
}

fn labels(gt: &Path, mapping: &Path) -> Vec<i32> {
    let m = Mapping::read(mapping).expect("mapping");
    let text = std::fs::read_to_string(gt).expect("gt");
    parse_labels(&text, &m.lookup(), None, gt, mapping).expect("labels")
}

fn argmax(plan: &[f32], k: usize) -> Vec<i32> {
    plan.chunks(k)
        .map(|r| {
            let mut best = 0;
            for j in 1..k {
                if r[j] > r[best] {
                    best = j;
                }
            }
            best as i32
        })
        .collect()
}

fn check_example(video: &str, mapping: &str) {
    let Some(root) = shared() else { return };
    let g = &golden(&root)[video];
    let ex = root.join("data/asot_examples");
    let path = ex.join(format!("affinity/{video}.npy"));
    let aff = parse_npy(&std::fs::read(&path).expect("npy"), &path).expect("affinity");
    let (n, k) = (aff.rows, aff.cols);
    assert_eq!(
        (n as u64, k as u64),
        (g["N"].as_u64().expect("N"), g["K"].as_u64().expect("K"))
    );
    let cost: Vec<f32> = aff.values.iter().map(|a| 1.0 - a).collect();
    let f = |key: &str| g[key].as_f64().expect(key) as f32;
    let params = AsotParams {
        eps: f("eps"),
        alpha: f("alpha"),
        radius: f("radius"),
        lambda_actions: f("lambda_actions"),
        iters: g["n_iters"].as_u64().expect("iters") as usize,
        step: StepSize::Auto,
        ..AsotParams::default()
    };
    assert_eq!(f("rho"), 0.0);
    let plan = solve(&cost, n, k, n, &params).expect("solve");
    let gpath = root.join(format!("golden/asot_plan_{video}.npy"));
    let reference = parse_npy(&std::fs::read(&gpath).expect("plan"), &gpath).expect("plan npy");
    let max_err = plan
        .iter()
        .zip(&reference.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("{video}: max abs error vs reference plan {max_err:.3e}");
    assert!(max_err <= 2e-4, "{video}: max abs error {max_err}");
    let pred = argmax(&plan, k);
    assert_eq!(
        pred,
        argmax(&reference.values, k),
        "argmax segmentation differs"
    );
    assert_eq!(
        segments(&pred).len() as u64,
        g["n_segments"].as_u64().expect("segs")
    );
    let gt = labels(
        &ex.join(format!("gt/{video}")),
        &ex.join(format!("gt/{mapping}")),
    );
    assert_eq!(gt.len(), n);
    let m = hungarian(&pred, &gt, None, video).expect("match");
    assert!(
        (m.mof() - g["mof"].as_f64().expect("mof")).abs() < 1e-9,
        "MoF {}",
        m.mof()
    );
    let mi = miou(&pred, &gt, &m, None);
    assert!(
        (mi - g["miou"].as_f64().expect("miou")).abs() < 1e-9,
        "mIoU {mi}"
    );
    // numpy's stream, drawn as ASOT's eval_f1 draws: exactly the reference's F1, seed by seed
    let numpy = |seed| {
        activity_level_with(&[(&pred, &gt)], None, seed, F1Rng::Numpy)
            .expect("f1")
            .f1
    };
    let want0 = g["f1_sampled_seed0"].as_f64().expect("f1 seed 0");
    assert_eq!(numpy(0), want0, "{video}: numpy F1, seed 0");
    let np_mean = (0..200).map(numpy).sum::<f64>() / 200.0;
    let want = g["f1_sampled_mean_seeds_0_199"].as_f64().expect("f1 mean");
    assert!(
        (np_mean - want).abs() < 1e-12,
        "{video}: numpy F1 mean {np_mean} vs {want}"
    );
    let f1s: Vec<f64> = (0..200)
        .map(|s| activity_level(&[(&pred, &gt)], None, s).expect("f1").f1)
        .collect();
    let mean = f1s.iter().sum::<f64>() / 200.0;
    eprintln!("{video}: sampled F1 mean over 200 seeds {mean:.4} (reference {want:.4})");
    assert!((mean - want).abs() < 0.005, "F1 mean {mean} vs {want}");
    for (i, row) in plan.chunks(k).enumerate() {
        let s: f32 = row.iter().sum();
        assert!(
            (s - 1.0).abs() < 1e-4 && row.iter().all(|&x| x >= 0.0),
            "row {i} sums to {s}"
        );
    }
}

#[test]
fn asot_plan_matches_reference_on_breakfast_salat() {
    check_example("P36_webcam01_P36_salat", "mapping_salat.txt");
}

#[test]
fn asot_plan_matches_reference_on_desktop_assembly() {
    check_example("2020-04-19_14-03-25", "mapping_da.txt");
}

#[test]
fn cte_reference_segmentation_scores_exactly() {
    let Some(root) = shared() else { return };
    let g = &golden(&root)["cte_coffee_reference_segmentation"];
    let bf = root.join("data/Breakfast");
    let mut preds = Vec::new();
    let mut gts = Vec::new();
    for v in g["videos"].as_array().expect("videos") {
        let v = v.as_str().expect("name");
        let seg = std::fs::read_to_string(
            root.join(format!("golden/cte_coffee_2019/segmentation/{v}.txt")),
        )
        .expect("seg");
        preds.push(
            seg.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.trim().parse::<i32>().expect("int"))
                .collect::<Vec<_>>(),
        );
        gts.push(labels(
            &bf.join(format!("groundTruth/{v}")),
            &bf.join("mapping/mapping.txt"),
        ));
    }
    let pairs: Vec<(&[i32], &[i32])> = preds
        .iter()
        .map(|p| p.as_slice())
        .zip(gts.iter().map(|g| g.as_slice()))
        .collect();
    let act = activity_level(&pairs, None, 0).expect("activity");
    let (per, _) = video_level(&pairs, None, 0).expect("video");
    let close = |a: f64, key: &str| {
        let want = g[key].as_f64().expect(key);
        assert!((a - want).abs() < 1e-12, "{key}: {a} vs {want}");
    };
    close(act.mof, "activity_level_mof");
    close(act.miou, "activity_level_miou");
    close(per.mof, "video_level_mof");
    close(per.miou, "video_level_miou");
}
