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
        let file = std::fs::File::open(out.join(table)).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let meta = reader.schema().metadata().clone();
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
