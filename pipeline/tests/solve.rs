//! `clot solve` end to end: the reference's settings on the real examples reproduce the golden
//! plan and scores; Parquet input equals `.npy` input; bad input fails with exit 2 and a message
//! that names the file and place.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, json};

use std::path::{Path, PathBuf};
use std::sync::Arc;

fn npy(path: &Path, shape: (usize, usize), values: &[f32]) {
    clot_datasets::npy::write_npy_f32(path, shape.0, shape.1, values).expect("write npy");
}

fn shared() -> Option<PathBuf> {
    clot_datasets::shared::require(&["data/asot_examples", "golden/golden.json"])
}

#[test]
fn reference_settings_reproduce_the_golden_salat_run() {
    let Some(root) = shared() else { return };
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("golden/golden.json")).expect("golden"),
    )
    .expect("json");
    let g = &golden["P36_webcam01_P36_salat"];
    let ex = root.join("data/asot_examples");
    let tmp = tempfile::tempdir().expect("tmp");
    let s = |p: &Path| p.to_str().expect("utf8 path").to_string();
    let (input, gt, mapping, out) = (
        s(&ex.join("affinity/P36_webcam01_P36_salat.npy")),
        s(&ex.join("gt/P36_webcam01_P36_salat")),
        s(&ex.join("gt/mapping_salat.txt")),
        s(&tmp.path().join("out")),
    );
    let v = json(&[
        "solve",
        &input,
        "--affinity",
        "--eps",
        "0.01",
        "--alpha",
        "0.6",
        "--radius",
        "0.04",
        "--lambda-actions",
        "0.06",
        "--gt",
        &gt,
        "--mapping",
        &mapping,
        "--out",
        &out,
        "--json",
    ]);
    let close = |a: &serde_json::Value, b: &serde_json::Value| {
        (a.as_f64().expect("f") - b.as_f64().expect("f")).abs() < 1e-9
    };
    assert!(close(&v["scores"]["activity"]["mof"], &g["mof"]), "{v}");
    assert!(close(&v["scores"]["activity"]["miou"], &g["miou"]), "{v}");
    assert_eq!(v["videos"][0][2], g["n_segments"]);
    // the written plan is the reference plan
    let (kind, plans) =
        clot_datasets::read_frame_matrix(&tmp.path().join("out/plan.parquet")).expect("plan");
    assert_eq!(kind, "plan");
    let path = root.join("golden/asot_plan_P36_webcam01_P36_salat.npy");
    let reference =
        clot_datasets::npy::parse_npy(&std::fs::read(&path).expect("npy"), &path).expect("parse");
    let err = plans[0]
        .1
        .as_slice()
        .iter()
        .zip(&reference.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err <= 2e-4, "max abs error {err}");
}

#[test]
fn parquet_input_equals_npy_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (300, 5);
    let aff: Vec<f32> = (0..n * k)
        .map(|x| (((x / k) * 5 / n) == x % k) as i32 as f32 * 0.6 + ((x as f32) * 0.37).sin() * 0.1)
        .collect();
    let npy_path = tmp.path().join("v1.npy");
    npy(&npy_path, (n, k), &aff);
    let mut schema = clot_schemas::Table::FrameMatrix.schema(k as i32);
    schema.metadata.insert(
        clot_schemas::KEY_MATRIX_KIND.to_string(),
        "affinity".to_string(),
    );
    let schema = Arc::new(schema);
    let m = clot_schemas::F32Matrix::from_vec(aff, k, "v1").expect("matrix");
    let batch = clot_datasets::frame_matrix_batch(Arc::clone(&schema), "v1", &m).expect("batch");
    let pq = tmp.path().join("in.parquet");
    clot_datasets::write_table(&pq, schema, &[batch]).expect("write");
    let a = json(&[
        "solve",
        npy_path.to_str().expect("p"),
        "--affinity",
        "--json",
    ]);
    let b = json(&["solve", pq.to_str().expect("p"), "--json"]);
    assert_eq!(a["videos"], b["videos"]);
    assert_eq!(a["videos"][0][2], 5, "five segments recovered: {a}");
}

#[test]
fn bad_input_names_file_and_place() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = |name: &str| tmp.path().join(name);
    let mut c = vec![0.5f32; 12];
    c[7] = f32::NAN;
    npy(&p("nan.npy"), (4, 3), &c);
    let e = fails(&["solve", p("nan.npy").to_str().expect("p")]);
    assert!(
        e.contains("nan.npy") && e.contains("frame 2, action 1"),
        "{e}"
    );
    npy(&p("k0.npy"), (4, 0), &[]);
    let e = fails(&["solve", p("k0.npy").to_str().expect("p")]);
    assert!(e.contains("k0.npy"), "{e}");
    npy(&p("n0.npy"), (0, 3), &[]);
    let e = fails(&["solve", p("n0.npy").to_str().expect("p")]);
    assert!(e.contains("n0.npy") && e.contains("N = 0"), "{e}");
    npy(&p("ok.npy"), (4, 3), &[0.5; 12]);
    std::fs::write(p("map.txt"), "0 a\n1 b\n").expect("w");
    std::fs::write(p("gt3"), "a\nb\nb\n").expect("w");
    let e = fails(&[
        "solve",
        p("ok.npy").to_str().expect("p"),
        "--gt",
        p("gt3").to_str().expect("p"),
        "--mapping",
        p("map.txt").to_str().expect("p"),
    ]);
    assert!(
        e.contains("gt3") && e.contains("3 labels") && e.contains("4 frames"),
        "{e}"
    );
    std::fs::write(p("gtx"), "a\nb\nzzz\nb\n").expect("w");
    let e = fails(&[
        "solve",
        p("ok.npy").to_str().expect("p"),
        "--gt",
        p("gtx").to_str().expect("p"),
        "--mapping",
        p("map.txt").to_str().expect("p"),
    ]);
    assert!(e.contains("gtx:3") && e.contains("`zzz`"), "{e}");
    let e = fails(&["solve", p("ok.npy").to_str().expect("p"), "--step", "fast"]);
    assert!(e.contains("--step `fast`"), "{e}");
}
