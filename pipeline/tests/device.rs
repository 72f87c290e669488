//! `--device`: the wgpu path from the command line gives the CPU's results within the kernels'
//! stated tolerances, records where it ran, and `auto` never takes a software adapter.

#![allow(clippy::unwrap_used)]

mod common;

use common::{gpu_available, json};

use std::path::Path;

/// The argmax of each row of an N×K plan.
fn argmax(plan: &[f32], k: usize) -> Vec<usize> {
    plan.chunks(k)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (j, &x)| if x > b.1 { (j, x) } else { b },
                )
                .0
        })
        .collect()
}

#[test]
fn solve_on_wgpu_reproduces_the_golden_salat_run() {
    let Some(root) = clot_datasets::shared::require(&["data/asot_examples", "golden/golden.json"])
    else {
        return;
    };
    if !gpu_available("solve_on_wgpu_reproduces_the_golden_salat_run") {
        return;
    }
    let ex = root.join("data/asot_examples");
    let tmp = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let input = s(&ex.join("affinity/P36_webcam01_P36_salat.npy"));
    let run = |device: &str| {
        let out = tmp.path().join(device);
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
            "--device",
            device,
            "--out",
            &s(&out),
            "--json",
        ]);
        let (_, plans) = clot_datasets::read_frame_matrix(&out.join("plan.parquet")).unwrap();
        (v, plans[0].1.as_slice().to_vec())
    };
    let (cpu_json, cpu) = run("cpu");
    let (gpu_json, gpu) = run("wgpu");
    assert_eq!(cpu_json["device"], "cpu");
    assert_eq!(gpu_json["device"], "wgpu");
    assert!(
        gpu_json["adapter"].as_str().unwrap().len() > 3,
        "{gpu_json}"
    );
    // the golden plan, within the CPU test's tolerance
    let path = root.join("golden/asot_plan_P36_webcam01_P36_salat.npy");
    let reference = clot_datasets::npy::parse_npy(&std::fs::read(&path).unwrap(), &path).unwrap();
    let err = gpu
        .iter()
        .zip(&reference.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let to_cpu = gpu
        .iter()
        .zip(&cpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let (ga, ca) = (argmax(&gpu, 8), argmax(&cpu, 8));
    let same = ga.iter().zip(&ca).filter(|(a, b)| a == b).count();
    eprintln!(
        "salat on wgpu: max |Δ| to golden {err:.2e}, to the CPU {to_cpu:.2e}, argmax agrees on \
         {same}/{} frames",
        ga.len()
    );
    assert!(err <= 2e-4, "max abs error to the golden plan {err}");
    assert!(same as f64 >= 0.999 * ga.len() as f64);
    assert_eq!(gpu_json["videos"], cpu_json["videos"]);
}

#[test]
fn auto_takes_a_real_gpu_only_and_the_outputs_record_the_device() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("c.npy");
    let (n, k) = (40, 3);
    let values: Vec<f32> = (0..n * k)
        .map(|x| if (x % k) == (x / k) * k / n { 0.1 } else { 1.0 })
        .collect();
    clot_datasets::npy::write_npy_f32(&input, n, k, &values).unwrap();
    let out = tmp.path().join("out");
    let v = json(&[
        "solve",
        input.to_str().unwrap(),
        "--device",
        "auto",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    #[cfg(feature = "wgpu")]
    let expected = match clot_stages::gpu::GpuContext::shared() {
        Ok(ctx) if !ctx.is_software() => "wgpu",
        _ => "cpu",
    };
    #[cfg(not(feature = "wgpu"))]
    let expected = "cpu";
    assert_eq!(v["device"], expected, "{v}");
    // both written tables carry the device and the adapter
    for table in ["plan.parquet", "segmentation.parquet"] {
        let meta = metadata(&out.join(table));
        assert_eq!(
            meta.get("clot.device").map(String::as_str),
            Some(expected),
            "{table}"
        );
        assert_eq!(
            meta.get("clot.adapter"),
            v["adapter"].as_str().map(str::to_string).as_ref(),
            "{table}"
        );
    }
}

/// The key-value metadata of a Parquet file's Arrow schema.
fn metadata(path: &Path) -> std::collections::HashMap<String, String> {
    let file = std::fs::File::open(path).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    reader.schema().metadata().clone().into_iter().collect()
}

/// The `loss` column of a run's training curve.
fn losses(run: &Path) -> Vec<f64> {
    let b = common::read(&run.join("training_curve.parquet"));
    let a = b
        .column_by_name("loss")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap()
        .clone();
    a.values().to_vec()
}

/// Whole coffee runs on both devices (OT solves on the GPU): the first 10 steps' losses agree to
/// 1e-3 relative and the metrics within 0.02, in clot and asot mode; the run folder records the
/// device.
#[test]
fn train_on_wgpu_matches_the_cpu_on_coffee() {
    let Some(root) = clot_datasets::shared::require(&["data/Breakfast"]) else {
        return;
    };
    if !gpu_available("train_on_wgpu_matches_the_cpu_on_coffee") {
        return;
    }
    let data = root.join("data/Breakfast");
    let tmp = tempfile::tempdir().unwrap();
    for mode in ["clot", "asot"] {
        let run = |device: &str| {
            let out = tmp.path().join(format!("{mode}-{device}"));
            let v = json(&[
                "-q",
                "train",
                data.to_str().unwrap(),
                "--activity",
                "coffee",
                "--mode",
                mode,
                "--seed",
                "0",
                "--device",
                device,
                "--out",
                out.to_str().unwrap(),
                "--json",
            ]);
            (v, losses(&out), out)
        };
        let (cpu, cpu_loss, _) = run("cpu");
        let (gpu, gpu_loss, gpu_out) = run("wgpu");
        assert_eq!(gpu["device"], "wgpu", "{gpu}");
        let worst = cpu_loss
            .iter()
            .zip(&gpu_loss)
            .take(10)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1e-12))
            .fold(0f64, f64::max);
        eprintln!("{mode}: first 10 losses, max relative difference {worst:.2e}");
        assert!(worst <= 1e-3, "{mode}: {worst}");
        for m in ["mof", "f1", "miou"] {
            let (a, b) = (
                cpu["scores"]["activity"][m].as_f64().unwrap(),
                gpu["scores"]["activity"][m].as_f64().unwrap(),
            );
            eprintln!("{mode}: {m} cpu {a:.4} wgpu {b:.4}");
            assert!((a - b).abs() <= 0.02, "{mode} {m}: {a} vs {b}");
        }
        let meta = metadata(&gpu_out.join("predictions.parquet"));
        assert_eq!(meta.get("clot.device").map(String::as_str), Some("wgpu"));
        let config = std::fs::read_to_string(gpu_out.join("config.toml")).unwrap();
        assert!(config.contains("device = \"wgpu\""), "{config}");
    }
}
