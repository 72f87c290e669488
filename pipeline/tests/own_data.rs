//! A user's own data, as a new user meets it: any feature dimension, no preset, with or without
//! ground truth, and the errors and refusals of options that would otherwise do nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use common::{clot, fails, json, ok, read, s};

/// A 15-dimensional dataset with 12 classes (11 steps + background), as a standard-layout folder
/// and as a Parquet file, written by `clot synth`.
struct Sensor {
    tmp: tempfile::TempDir,
    folder: PathBuf,
    parquet: PathBuf,
}

impl Sensor {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("sensor");
        let parquet = tmp.path().join("sensor.parquet");
        for out in [&folder, &parquet] {
            ok(&[
                "synth",
                "--dim",
                "15",
                "--actions",
                "11",
                "--videos",
                "6",
                "--median-len",
                "300",
                "--out",
                s(out),
            ]);
        }
        Sensor {
            tmp,
            folder,
            parquet,
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// `clot train ... --json` with a short run.
fn train(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["train", "--epochs", "2", "--json"];
    all.extend_from_slice(args);
    json(&all)
}

#[test]
fn trains_without_a_preset_in_both_modes_from_a_folder_and_from_parquet() {
    let d = Sensor::new();
    for (input, tag) in [(&d.folder, "folder"), (&d.parquet, "parquet")] {
        for mode in ["clot", "asot"] {
            let out = d.out(&format!("{tag}-{mode}"));
            let r = train(&[
                s(input),
                "--actions",
                "12",
                "--mode",
                mode,
                "--out",
                s(&out),
            ]);
            assert_eq!(
                r["config"]["mlp"],
                serde_json::json!([15, 128, 40]),
                "D-128-40"
            );
            assert_eq!(r["config"]["actions"], 12);
            assert_eq!(r["config"]["mode"], mode);
            assert_eq!(r["config"]["epochs"], 2);
            assert_eq!(
                r["config"]["rho"].as_f64().unwrap() as f32,
                0.15,
                "generic ρ"
            );
            let mof = r["scores"]["activity"]["mof"].as_f64().unwrap();
            assert!(mof > 0.0 && mof <= 1.0, "{tag} {mode}: MoF {mof}");
            for f in [
                "predictions.parquet",
                "summary.parquet",
                "video_metrics.parquet",
                "checkpoint.safetensors",
                "segments.png",
                "segments.svg",
                "curve.png",
                "curve.svg",
            ] {
                assert!(out.join(f).is_file(), "{tag} {mode}: {f} missing");
            }
        }
    }
}

#[test]
fn k_comes_from_the_ground_truth_and_is_said_when_no_actions_are_given() {
    let d = Sensor::new();
    let out = d.out("k-from-gt");
    let run = clot(&["train", s(&d.folder), "--epochs", "1", "--out", s(&out)]);
    assert!(run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("K = 12") && err.contains("reads the labels") && err.contains("--actions"),
        "{err}"
    );
    assert!(
        err.contains("settings that differ from the defaults: epochs = 1"),
        "{err}"
    );
    let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(cfg.contains("actions = 12"), "{cfg}");
}

#[test]
fn unlabelled_data_trains_predicts_and_writes_no_metrics() {
    let d = Sensor::new();
    std::fs::remove_dir_all(d.folder.join("groundTruth")).unwrap();
    std::fs::remove_dir_all(d.folder.join("mapping")).unwrap();
    let e = fails(&["train", s(&d.folder), "--epochs", "1"]);
    assert!(
        e.contains("no ground truth") && e.contains("--actions"),
        "{e}"
    );
    let out = d.out("unlabelled");
    let stdout = ok(&[
        "train",
        s(&d.folder),
        "--actions",
        "12",
        "--epochs",
        "1",
        "--out",
        s(&out),
    ]);
    assert!(
        stdout.contains("no ground truth: predictions written, no metrics"),
        "{stdout}"
    );
    for f in [
        "predictions.parquet",
        "checkpoint.safetensors",
        "segments.png",
        "curve.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for f in ["summary.parquet", "video_metrics.parquet"] {
        assert!(!out.join(f).exists(), "{f} written without ground truth");
    }
    let frames = read(&out.join("predictions.parquet")).num_rows();
    let inspect = json(&["inspect", s(&d.folder), "--json"]);
    assert_eq!(
        frames,
        inspect["summary"]["frames"].as_u64().unwrap() as usize
    );
    assert_eq!(inspect["unlabelled_videos"].as_array().unwrap().len(), 6);
}

#[test]
fn metrics_cover_the_videos_that_have_ground_truth() {
    let d = Sensor::new();
    let gt = d.folder.join("groundTruth");
    let first = std::fs::read_dir(&gt)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(first).unwrap();
    let r = train(&[
        s(&d.folder),
        "--actions",
        "12",
        "--out",
        s(&d.out("partly")),
    ]);
    assert_eq!(r["unscored_videos"], 1);
    assert_eq!(r["scores"]["per_video"].as_array().unwrap().len(), 5);
}

#[test]
fn a_preset_with_an_mlp_override_trains_on_data_of_another_dimension() {
    let d = Sensor::new();
    // desktop-assembly's D is 512: the preset alone refuses 15-d data, naming the preset
    let e = fails(&[
        "train",
        s(&d.folder),
        "--preset",
        "desktop-assembly",
        "--epochs",
        "1",
    ]);
    assert!(
        e.contains("expected 512") && e.contains("desktop-assembly"),
        "{e}"
    );
    let r = train(&[
        s(&d.folder),
        "--preset",
        "desktop-assembly",
        "--mlp",
        "15,128,40",
        "--actions",
        "12",
        "--out",
        s(&d.out("da")),
    ]);
    assert_eq!(r["config"]["mlp"], serde_json::json!([15, 128, 40]));
    assert_eq!(
        r["config"]["rho"].as_f64().unwrap() as f32,
        0.25,
        "the preset's ρ"
    );
    // and the reader checks the data against the override's D, not the preset's
    let e = fails(&[
        "train",
        s(&d.folder),
        "--preset",
        "desktop-assembly",
        "--mlp",
        "16,8",
    ]);
    assert!(e.contains("expected 16") && e.contains("--mlp"), "{e}");
}

#[test]
fn errors_a_new_user_meets_say_what_to_do() {
    let d = Sensor::new();
    // K larger than a video's frame count
    let e = fails(&["train", s(&d.folder), "--actions", "400", "--epochs", "1"]);
    assert!(
        e.contains("K = 400") && e.contains("frames") && e.contains("--actions"),
        "{e}"
    );
    // no epochs
    let e = fails(&["train", s(&d.folder), "--actions", "12", "--epochs", "0"]);
    assert!(e.contains("epochs must be at least 1"), "{e}");
    // settings out of range, named by key
    for (flag, value, key) in [
        ("--alpha-train", "1.5", "alpha_train must be in [0, 1]"),
        ("--alpha-eval", "-0.1", "alpha_eval must be in [0, 1]"),
        ("--radius", "-0.1", "radius must be a number ≥ 0"),
        ("--rho", "-1", "rho must be a number ≥ 0"),
        (
            "--lambda-actions-train",
            "-1",
            "lambda_actions_train must be a number ≥ 0",
        ),
        ("--eps-eval", "0", "eps_eval must be a positive number"),
        ("--swd-weight", "-2", "swd_weight must be a number ≥ 0"),
        ("--weight-decay", "-1", "weight_decay must be a number ≥ 0"),
    ] {
        let e = fails(&["train", s(&d.folder), "--actions", "12", flag, value]);
        assert!(e.contains(key), "{flag} {value}: {e}");
    }
}

#[test]
fn checkpoints_are_checked_against_the_dataset_and_their_settings() {
    let d = Sensor::new();
    let out = d.out("ck");
    train(&[s(&d.folder), "--actions", "12", "--out", s(&out)]);
    let ckpt = out.join("checkpoint.safetensors");
    // evaluating on a dataset of another D names the checkpoint and both dimensions
    let e = fails(&["eval", "--checkpoint", s(&ckpt), "demo"]);
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("64") && e.contains("15"),
        "{e}"
    );
    // the same checkpoint evaluates on its own data
    let v = json(&["eval", "--checkpoint", s(&ckpt), s(&d.folder), "--json"]);
    assert!(v["activity"]["mof"].as_f64().unwrap() > 0.0);
    // a checkpoint whose tensors do not fit its settings names the tensor and both shapes
    let (params, mut cfg) = clot_pipeline::output::read_checkpoint(&ckpt).unwrap();
    cfg.actions = 9;
    let bad = d.out("bad.safetensors");
    clot_pipeline::output::write_checkpoint(&bad, &params, &cfg).unwrap();
    let e = fails(&["eval", "--checkpoint", s(&bad), s(&d.folder)]);
    assert!(
        e.contains("bad.safetensors")
            && e.contains("clusters")
            && e.contains("[12, 40]")
            && e.contains("[9, 40]"),
        "{e}"
    );
}

#[test]
fn options_that_would_do_nothing_are_errors_or_work() {
    let d = Sensor::new();
    // the activity rule belongs to folders
    let e = fails(&["train", s(&d.parquet), "--activity-rule", "breakfast"]);
    assert!(
        e.contains("--activity-rule") && e.contains("Parquet"),
        "{e}"
    );
    let e = fails(&["inspect", "demo", "--skip-bad-videos"]);
    assert!(e.contains("--skip-bad-videos"), "{e}");
    // synth --compression on a folder
    let e = fails(&["synth", "--out", s(&d.out("f")), "--compression", "zstd"]);
    assert!(e.contains("--compression") && e.contains("folder"), "{e}");
    // inspect --k / --seed need --baselines
    for extra in [["--k", "3"], ["--seed", "2"]] {
        let out = clot(&["inspect", "demo", extra[0], extra[1]]);
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("--baselines"), "{e}");
    }
    // --threads 0
    let e = fails(&["--threads", "0", "inspect", "demo"]);
    assert!(e.contains("--threads"), "{e}");
}

#[test]
fn activity_rules_choose_how_videos_group() {
    let d = Sensor::new();
    // synth writes features/demo/P01_synth_demo.txt ...: by folder, one activity `demo`
    let v = json(&["inspect", s(&d.folder), "--json"]);
    assert_eq!(v["summary"]["activities"], serde_json::json!({"demo": 6}));
    // the Breakfast rule takes the last `_` token (`demo`), the YTI rule all but it
    let v = json(&["inspect", s(&d.folder), "--activity-rule", "yti", "--json"]);
    let acts = v["summary"]["activities"].as_object().unwrap();
    assert_eq!(acts.len(), 6, "P01_synth, P02_synth, ...: {acts:?}");
    let v = json(&[
        "inspect",
        s(&d.folder),
        "--activity-rule",
        "single",
        "--json",
    ]);
    assert_eq!(v["summary"]["activities"], serde_json::json!({"all": 6}));
    // files directly in features/ are one activity
    let flat = d.out("flat");
    std::fs::create_dir_all(flat.join("features")).unwrap();
    for e in std::fs::read_dir(d.folder.join("features/demo")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, flat.join("features").join(p.file_name().unwrap())).unwrap();
    }
    let v = json(&["inspect", s(&flat), "--json"]);
    assert_eq!(v["summary"]["activities"], serde_json::json!({"all": 6}));
}

#[test]
fn bad_videos_are_skipped_on_request_and_counted_in_the_summary() {
    let read_u32 = |path: &Path, column: &str| {
        read(path)
            .column_by_name(column)
            .unwrap()
            .as_primitive::<arrow_array::types::UInt32Type>()
            .value(0)
    };
    let d = Sensor::new();
    let feats = d.folder.join("features/demo");
    let victim = std::fs::read_dir(&feats)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&victim, "1 2 3\nnot numbers\n").unwrap();
    let e = fails(&["train", s(&d.folder), "--actions", "12", "--epochs", "1"]);
    assert!(e.contains("not a number"), "{e}");
    let out = d.out("skip");
    let run = clot(&[
        "train",
        s(&d.folder),
        "--actions",
        "12",
        "--epochs",
        "1",
        "--skip-bad-videos",
        "--out",
        s(&out),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("skipped video") && err.contains("not a number"),
        "{err}"
    );
    let skipped = read_u32(&out.join("summary.parquet"), "skipped_videos");
    assert_eq!(skipped, 1);
    assert_eq!(read_u32(&out.join("summary.parquet"), "videos"), 5);
}

#[test]
fn non_finite_features_in_parquet_are_refused_or_zeroed_on_request() {
    // components never hold NaN, so write a sentinel and turn its bytes into NaN in the file
    // (uncompressed pages store f32 values as their little-endian bytes)
    let tmp = tempfile::tempdir().unwrap();
    let mut ds = clot_datasets::generate(&clot_datasets::SynthConfig::demo()).unwrap();
    let sentinel = 12345.678f32;
    let v = &mut ds.videos[1];
    let mut values = v.features.as_slice().to_vec();
    values[3 * 64 + 5] = sentinel;
    v.features = clot_schemas::FrameFeatures::from_vec(values, 64, "v").unwrap();
    let pq = tmp.path().join("nan.parquet");
    clot_datasets::write_parquet(&ds, &pq, clot_datasets::ParquetCompression::None).unwrap();
    let mut bytes = std::fs::read(&pq).unwrap();
    let (from, to) = (sentinel.to_le_bytes(), f32::NAN.to_le_bytes());
    let mut patched = 0;
    for i in 0..bytes.len() - 4 {
        if bytes[i..i + 4] == from {
            bytes[i..i + 4].copy_from_slice(&to);
            patched += 1;
        }
    }
    assert!(patched >= 1);
    std::fs::write(&pq, &bytes).unwrap();
    let e = fails(&["inspect", s(&pq)]);
    assert!(
        e.contains(&ds.videos[1].name) && e.contains("row 4") && e.contains("column 6"),
        "{e}"
    );
    let out = clot(&["inspect", s(&pq), "--zero-non-finite", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("replaced 1 non-finite"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["zeroed_non_finite"], 1);
}

#[test]
fn inspect_lists_labels_in_id_order_and_the_k_a_run_would_use() {
    let d = Sensor::new();
    let text = ok(&["inspect", s(&d.folder)]);
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {text}"))
    };
    assert!(at("  2 step_2") < at("  10 step_10"), "{text}");
    assert!(text.contains("K = 12 from the classes present"), "{text}");
    let text = ok(&["inspect", "demo", "--preset", "demo"]);
    assert!(text.contains("K = 7 from the preset"), "{text}");
}

#[test]
fn help_has_a_line_for_every_flag_and_groups_them() {
    let h = ok(&["train", "--help"]);
    for heading in ["Data:", "Training:", "Model:", "OT:", "CLOT:", "Output:"] {
        assert!(h.contains(heading), "{heading}: {h}");
    }
    // every option line is followed by text on the same line or the next one
    let lines: Vec<&str> = h.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with("--")
            || (t.starts_with('-') && t.chars().nth(1).is_some_and(char::is_alphabetic))
        {
            let words = t
                .split_whitespace()
                .filter(|w| !w.starts_with('-') && !w.starts_with('<'))
                .count();
            let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or("");
            let next_is_text = !next.is_empty() && !next.starts_with('-');
            assert!(words > 0 || next_is_text, "no help for `{t}`");
        }
    }
    // the command list: one line per command, no wrapped continuation lines
    let top = ok(&["--help"]);
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(commands.len() >= 9, "{top}");
    for c in &commands {
        assert!(
            c.starts_with("  ") && !c.starts_with("    "),
            "wrapped line `{c}` in\n{top}"
        );
    }
}

#[test]
fn the_readme_commands_take_a_folder_of_npy_files_to_a_model_and_a_plot() {
    // features directly in features/, as .npy, no ground truth: the README's "Your own data"
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my-data");
    let ds = clot_datasets::generate(&clot_datasets::SynthConfig {
        dim: 9,
        videos: 4,
        ..clot_datasets::SynthConfig::demo()
    })
    .unwrap();
    for v in &ds.videos {
        let p = dir.join("features").join(format!("{}.npy", v.name));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        clot_datasets::npy::write_npy_f32(&p, v.frames(), 9, v.features.as_slice()).unwrap();
    }
    let text = ok(&["inspect", s(&dir)]);
    assert!(
        text.contains("feature dim 9") && text.contains("all (4 videos"),
        "{text}"
    );
    let out = tmp.path().join("runs/mine");
    let text = ok(&[
        "train",
        s(&dir),
        "--actions",
        "7",
        "--epochs",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(text.contains("no metrics"), "{text}");
    let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(cfg.contains("mlp = [9, 128, 40]"), "{cfg}");
    for f in ["segments.png", "curve.png", "checkpoint.safetensors"] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn a_sweep_takes_own_data_without_a_preset() {
    let d = Sensor::new();
    let file = d.out("own.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"own\"\ndataset = {:?}\nactions = 12\nepochs = 1\n[grid]\nmode = [\"clot\", \"asot\"]\n",
            s(&d.parquet)
        ),
    )
    .unwrap();
    let plan = json(&["sweep", s(&file), "--dry-run", "--json"]);
    assert_eq!(plan.as_array().unwrap().len(), 2);
    assert_eq!(plan[0]["config"]["mlp"], serde_json::json!([15, 128, 40]));
    assert_eq!(plan[0]["config"]["epochs"], 1);
    let out = d.out("sweeps");
    ok(&["sweep", s(&file), "--out", s(&out), "--quiet"]);
    assert_eq!(std::fs::read_dir(out.join("sweep=own")).unwrap().count(), 2);
}

/// `--actions auto` takes K from the features alone: the same K̂ and the same score curve with
/// the ground truth removed, and the choice recorded in the report, a Parquet table and a plot.
#[test]
fn actions_auto_reads_no_labels_and_records_its_curve() {
    let d = Sensor::new();
    let labelled = train(&[
        s(&d.folder),
        "--actions",
        "auto:2-16",
        "--out",
        s(&d.out("auto-labelled")),
    ]);
    std::fs::remove_dir_all(d.folder.join("groundTruth")).unwrap();
    std::fs::remove_dir_all(d.folder.join("mapping")).unwrap();
    let out = d.out("auto-unlabelled");
    let unlabelled = train(&[s(&d.folder), "--actions", "auto:2-16", "--out", s(&out)]);
    let k = unlabelled["config"]["actions"].as_u64().unwrap();
    assert_eq!(labelled["config"]["actions"], k);
    assert_eq!(
        labelled["k_choice"]["curve"],
        unlabelled["k_choice"]["curve"]
    );
    assert!(labelled["scores"].is_object() && unlabelled["scores"].is_null());
    assert!((2..=16).contains(&k), "K̂ = {k}");
    let choice = &unlabelled["k_choice"];
    assert_eq!(choice["k"], k);
    assert_eq!(choice["range"], serde_json::json!({"min": 2, "max": 16}));
    assert_eq!(choice["curve"].as_array().unwrap().len(), 15);
    let notes = unlabelled["notes"].to_string();
    assert!(
        notes.contains(&format!("K = {k} estimated")) && notes.contains("labels were not read"),
        "{notes}"
    );
    let table = read(&out.join("k_choice.parquet"));
    assert_eq!(table.num_rows(), 15);
    let chosen = table.column_by_name("chosen").unwrap().as_boolean();
    assert_eq!(chosen.true_count(), 1);
    for f in ["k_choice.png", "k_choice.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(cfg.contains(&format!("actions = {k}")), "{cfg}");
    // the labelled run's summary says K̂ and how it was chosen
    let summary = read(&d.out("auto-labelled").join("summary.parquet"));
    let col = |name: &str| std::sync::Arc::clone(summary.column_by_name(name).unwrap());
    let actions = col("actions");
    assert_eq!(
        actions
            .as_primitive::<arrow_array::types::UInt32Type>()
            .value(0) as u64,
        k
    );
    assert!(col("k_estimated").as_boolean().value(0));
    let range = col("k_range");
    let range = range.as_string::<i32>();
    assert_eq!(range.value(0), "2-16");
}

#[test]
fn actions_auto_errors_say_what_to_change() {
    let d = Sensor::new();
    let e = fails(&["train", s(&d.folder), "--actions", "auto:5-3"]);
    assert!(e.contains("2 ≤ MIN ≤ MAX"), "{e}");
    let e = fails(&["train", s(&d.folder), "--actions", "many"]);
    assert!(e.contains("auto:MIN-MAX"), "{e}");
    // 6 videos of about 300 frames cut into tens of segments: too few for K = 500 and up
    let e = fails(&["train", s(&d.folder), "--actions", "auto:500-5000"]);
    assert!(
        e.contains("choosing K for `")
            && e.contains("fewer than three per action for the smallest K tried (500)"),
        "{e}"
    );
    // a range past a third of the segments is cut there, and the note says so
    let r = json(&[
        "train",
        s(&d.folder),
        "--actions",
        "auto:2-5000",
        "--epochs",
        "1",
        "--out",
        s(&d.out("auto-cut")),
        "--json",
    ]);
    let method = r["k_choice"]["method"].as_str().unwrap();
    assert!(method.contains("range 2-5000 cut to 2-"), "{method}");
    let notes = r["notes"].to_string();
    assert!(notes.contains("range 2-5000 cut to 2-"), "{notes}");
    let searched = r["k_choice"]["curve"].as_array().unwrap().len();
    let k = r["k_choice"]["k"].as_u64().unwrap() as usize;
    assert!(
        searched >= 3 && (2..2 + searched).contains(&k),
        "{searched} {k}"
    );
}

/// The default range of `auto` stops at the shortest video, so that K̂ can always train.
#[test]
fn actions_auto_default_range_fits_the_shortest_video() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("short");
    let ds = clot_datasets::generate(&clot_datasets::SynthConfig {
        dim: 6,
        videos: 4,
        ..clot_datasets::SynthConfig::demo()
    })
    .unwrap();
    for (i, v) in ds.videos.iter().enumerate() {
        // the last video keeps only 12 frames (after its leading zero rows)
        let n = if i == 3 {
            v.zero_rows().1 + 12
        } else {
            v.frames()
        };
        let p = dir.join("features").join(format!("{}.npy", v.name));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        clot_datasets::npy::write_npy_f32(&p, n, 6, &v.features.as_slice()[..n * 6]).unwrap();
    }
    let r = train(&[
        s(&dir),
        "--actions",
        "auto",
        "--out",
        s(&tmp.path().join("run")),
    ]);
    let range = &r["k_choice"]["range"];
    let shortest = ds.videos[3].zero_rows().1 as u64 + 12;
    assert_eq!(range["min"], 2);
    assert_eq!(range["max"].as_u64().unwrap(), shortest, "{range}");
    assert!(r["config"]["actions"].as_u64().unwrap() <= shortest);
}
