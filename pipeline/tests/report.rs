//! `clot report` end to end: configurations over seeds, means equal to the trials' own values, the
//! best configuration by ground truth and label-free per mode, the tables and pictures it writes,
//! failed trials counted but not averaged, and errors that name the folder or file.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int64Type, UInt32Type};
use common::{clot, fails, json, ok, read, s, svg_texts, write};
use serde_json::Value;

/// One trial as read straight from its `trial.parquet`.
#[derive(Debug)]
struct Trial {
    status: String,
    mode: String,
    rho: f32,
    lr: f32,
    seed: i64,
    metrics: BTreeMap<&'static str, Option<f64>>,
}

const METRICS: [&str; 7] = [
    "mof",
    "f1",
    "miou",
    "video_mof",
    "video_f1",
    "video_miou",
    "final_loss",
];

fn trials(out: &Path) -> Vec<Trial> {
    let mut found = Vec::new();
    for sweep in std::fs::read_dir(out).unwrap() {
        let sweep = sweep.unwrap().path();
        if !sweep
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sweep=")
        {
            continue;
        }
        for t in std::fs::read_dir(&sweep).unwrap() {
            let b = read(&t.unwrap().path().join("trial.parquet"));
            let text = |c: &str| {
                b.column_by_name(c)
                    .unwrap()
                    .as_string::<i32>()
                    .value(0)
                    .to_string()
            };
            let f32_ = |c: &str| {
                b.column_by_name(c)
                    .unwrap()
                    .as_primitive::<Float32Type>()
                    .value(0)
            };
            let metrics = METRICS
                .iter()
                .map(|m| {
                    let a = b.column_by_name(m).unwrap().as_primitive::<Float64Type>();
                    (*m, a.is_valid(0).then(|| a.value(0)))
                })
                .collect();
            found.push(Trial {
                status: text("status"),
                mode: text("mode"),
                rho: f32_("rho"),
                lr: f32_("lr"),
                seed: b
                    .column_by_name("seed")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .value(0),
                metrics,
            });
        }
    }
    found
}

/// Asserts that the SVG `stem` has a text element equal to, or containing, each of `texts`.
fn assert_texts(dir: &Path, stem: &str, exact: &[&str], containing: &[&str]) {
    let found = svg_texts(&dir.join(format!("{stem}.svg")));
    for t in exact {
        assert!(
            found.iter().any(|f| f == t),
            "{stem}.svg has no text {t:?}: {found:?}"
        );
    }
    for t in containing {
        assert!(
            found.iter().any(|f| f.contains(t)),
            "{stem}.svg has no text containing {t:?}: {found:?}"
        );
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn sample_std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(1.0)
}

/// The configuration of `report` with this mode and rho.
fn config<'a>(report: &'a Value, mode: &str, rho: f64) -> &'a Value {
    report["configurations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["settings"]["mode"] == mode && c["settings"]["rho"].as_f64() == Some(rho))
        .unwrap_or_else(|| panic!("no configuration mode {mode}, rho {rho}"))
}

const GRID: &str = "name = \"g\"\ndataset = \"demo\"\nepochs = 2\n[grid]\nmode = [\"clot\", \"asot\"]\nseed = [0, 1]\nrho = [0.15, 0.25]\n";

#[test]
fn configurations_average_the_seeds_and_the_best_is_chosen_two_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "g.toml", GRID);
    let out = tmp.path().join("out");
    ok(&["sweep", s(&f), "--out", s(&out), "--quiet", "--predictions"]);
    let direct = trials(&out);
    assert_eq!(direct.len(), 8);
    let report = json(&["report", s(&out), "--json"]);
    assert_eq!(report["trials"], 8);
    assert_eq!(report["ok"], 8);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["sweeps"][0]["name"], "g");
    assert_eq!(
        report["sweeps"][0]["swept"],
        serde_json::json!(["mode", "rho"])
    );
    let confs = report["configurations"].as_array().unwrap();
    assert_eq!(confs.len(), 4, "2 modes × 2 rho");

    // every mean and std is that of the trials' own values
    let mut by_mof: Vec<(f64, u64)> = Vec::new();
    let mut loss_of: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
    for mode in ["clot", "asot"] {
        for rho in [0.15f32, 0.25] {
            let c = config(&report, mode, rho.to_string().parse().unwrap());
            assert_eq!(c["seeds"], serde_json::json!([0, 1]), "{c}");
            assert_eq!(c["trials"].as_array().unwrap().len(), 2);
            assert_eq!(c["graph"], mode);
            let mine: Vec<&Trial> = direct
                .iter()
                .filter(|t| t.mode == mode && t.rho == rho)
                .collect();
            assert_eq!(mine.len(), 2);
            let mut seeds: Vec<i64> = mine.iter().map(|t| t.seed).collect();
            seeds.sort();
            assert_eq!(seeds, [0, 1]);
            for m in METRICS {
                let v: Vec<f64> = mine.iter().map(|t| t.metrics[m].unwrap()).collect();
                let stat = if m == "final_loss" {
                    &c["final_loss"]
                } else {
                    &c["metrics"][m]
                };
                assert_eq!(stat["n"], 2);
                assert!(
                    close(stat["mean"].as_f64().unwrap(), mean(&v)),
                    "{mode} {rho} {m}: {stat} vs {v:?}"
                );
                assert!(close(stat["std"].as_f64().unwrap(), sample_std(&v)), "{m}");
            }
            let id = c["id"].as_u64().unwrap();
            by_mof.push((c["metrics"]["mof"]["mean"].as_f64().unwrap(), id));
            loss_of
                .entry(mode.to_string())
                .or_default()
                .push((c["final_loss"]["mean"].as_f64().unwrap(), id));
        }
    }

    // best by MoF is the argmax; the label-free choice is the lowest loss within each mode
    let best = report["best"].as_array().unwrap();
    let argmax = by_mof.iter().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap().1;
    for scope in [Value::from("demo"), Value::Null] {
        let gt: Vec<&Value> = best
            .iter()
            .filter(|b| b["activity"] == scope && b["label_free"] == false)
            .collect();
        assert_eq!(gt.len(), 1, "{scope}");
        assert_eq!(gt[0]["criterion"], "mof");
        assert_eq!(gt[0]["configurations"], serde_json::json!([argmax]));
        let free: Vec<&Value> = best
            .iter()
            .filter(|b| b["activity"] == scope && b["label_free"] == true)
            .collect();
        let mut graphs: Vec<&str> = free.iter().map(|b| b["graph"].as_str().unwrap()).collect();
        graphs.sort();
        assert_eq!(graphs, ["asot", "clot"], "one label-free choice per mode");
        for b in free {
            let mode = b["graph"].as_str().unwrap();
            let lowest = loss_of[mode]
                .iter()
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap();
            assert_eq!(b["configurations"], serde_json::json!([lowest.1]), "{mode}");
            assert_eq!(b["criterion"], "final_loss");
            assert_eq!(b["settings"]["mode"], mode);
            assert!(close(b["value"].as_f64().unwrap(), lowest.0));
        }
    }
    assert!(
        report["label_free_note"]
            .as_str()
            .unwrap()
            .contains("not comparable")
    );

    // the tables
    let dir = out.join("report");
    let table = read(&dir.join("configurations.parquet"));
    assert_eq!(table.num_rows(), 4);
    let schema = table.schema();
    let ty = |c: &str| schema.field_with_name(c).unwrap().data_type().clone();
    assert_eq!(ty("rho"), arrow_schema::DataType::Float32);
    assert_eq!(ty("mode"), arrow_schema::DataType::Utf8);
    assert_eq!(ty("seeds"), arrow_schema::DataType::UInt32);
    assert_eq!(ty("mof_mean"), arrow_schema::DataType::Float64);
    assert_eq!(ty("best_by_mof"), arrow_schema::DataType::Boolean);
    let ids = table
        .column_by_name("id")
        .unwrap()
        .as_primitive::<UInt32Type>();
    let mofs = table
        .column_by_name("mof_mean")
        .unwrap()
        .as_primitive::<Float64Type>();
    let rhos = table
        .column_by_name("rho")
        .unwrap()
        .as_primitive::<Float32Type>();
    for (i, c) in confs.iter().enumerate() {
        assert_eq!(u64::from(ids.value(i)), c["id"].as_u64().unwrap());
        assert_eq!(mofs.value(i), c["metrics"]["mof"]["mean"].as_f64().unwrap());
        assert!([0.15f32, 0.25].contains(&rhos.value(i)));
    }
    let csv = std::fs::read_to_string(dir.join("configurations.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("id,sweep,dataset,activity,preset,graph,mode,rho,seeds,failed"));
    assert!(lines[0].contains("mof_mean,mof_std") && lines[0].contains("final_loss_mean"));
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains(",0.15,") || l.contains(",0.25,")),
        "{csv}"
    );
    let best_csv = std::fs::read_to_string(dir.join("best.csv")).unwrap();
    assert!(best_csv.starts_with("sweep,dataset,scope,criterion,label_free,graph"));
    assert_eq!(best_csv.lines().count(), 1 + best.len());
    assert!(
        best_csv.contains(",overall,mof,false,")
            && best_csv.contains(",demo,final_loss,true,asot,")
    );

    // the pictures: PNG and SVG, with titles, axis labels and legends
    let pics = dir.join("g").join("demo");
    for stem in [
        "mof_vs_rho",
        "mof_vs_mode",
        "training_curves",
        "segments_seed0",
        "segments_seed1",
    ] {
        let png = pics.join(format!("{stem}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!(img.width(), 1200, "{stem}");
        assert!(pics.join(format!("{stem}.svg")).exists(), "{stem}.svg");
    }
    // title, axis labels, tick labels, legend heading and entries
    assert_texts(
        &pics,
        "mof_vs_rho",
        &[
            "rho",
            "MoF (mean ± std over seeds)",
            "0.15",
            "0.25",
            "one line per mode",
            "mode = clot",
            "mode = asot",
        ],
        &["MoF vs rho", "bars ± 1 sample std"],
    );
    assert_texts(
        &pics,
        "mof_vs_mode",
        &[
            "mode",
            "clot",
            "asot",
            "one colour per rho",
            "rho = 0.15",
            "rho = 0.25",
        ],
        &["MoF vs mode"],
    );
    assert_texts(
        &pics,
        "training_curves",
        &["step", "training loss (total)", "one line per seed"],
        &["Training loss per step", "best by MoF", "seed 0", "seed 1"],
    );
    assert_texts(
        &pics,
        "segments_seed0",
        &["ground truth", "prediction", "class 1"],
        &["Ground truth vs prediction", "cluster"],
    );
    let listed: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 3 + 2 * 5, "{listed:?}");

    // the terminal table and another metric
    let text = ok(&[
        "report",
        s(&out),
        "--out",
        s(&tmp.path().join("f1")),
        "--by",
        "f1",
    ]);
    for t in [
        "mode",
        "rho",
        "seeds",
        "MoF",
        "F1",
        "mIoU",
        "±",
        "best of demo / demo",
        "by F1 (ground truth)",
        "label-free, asot",
        "label-free, clot",
        "not comparable",
    ] {
        assert!(text.contains(t), "{t:?} missing from:\n{text}");
    }
    let best_f1 = std::fs::read_to_string(tmp.path().join("f1/best.csv")).unwrap();
    assert!(best_f1.lines().next().unwrap().ends_with("f1_mean,f1_std"));
    let f1 = json(&[
        "report",
        s(&out),
        "--out",
        s(&tmp.path().join("f1")),
        "--by",
        "f1",
        "--json",
    ]);
    let argmax_f1 = confs
        .iter()
        .max_by(|a, b| {
            a["metrics"]["f1"]["mean"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["metrics"]["f1"]["mean"].as_f64().unwrap())
        })
        .unwrap()["id"]
        .clone();
    let chosen = f1["best"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["criterion"] == "f1" && b["activity"] == "demo")
        .unwrap();
    assert_eq!(chosen["configurations"][0], argmax_f1);
    assert!(tmp.path().join("f1/g/demo/f1_vs_rho.svg").exists());
}

#[test]
fn failed_trials_are_counted_and_listed_not_averaged() {
    let tmp = tempfile::tempdir().unwrap();
    // lr 1e30 sends the embeddings to NaN: both of its seeds fail, lr 1e-3 runs
    let f = write(
        tmp.path(),
        "f.toml",
        "name = \"f\"\ndataset = \"demo\"\nepochs = 1\nmode = \"asot\"\n[grid]\nlr = [1e-3, 1e30]\nseed = [0, 1]\n",
    );
    let out = tmp.path().join("out");
    let e = fails(&["sweep", s(&f), "--out", s(&out), "--quiet"]);
    assert!(e.contains("2 of 4 trials failed"), "{e}");
    let direct = trials(&out);
    assert_eq!(direct.iter().filter(|t| t.status == "failed").count(), 2);
    let report = json(&["report", s(&out), "--json"]);
    assert_eq!(report["trials"], 4);
    assert_eq!(report["ok"], 2);
    assert_eq!(report["failed"], 2);
    let failed = report["failed_trials"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    for t in failed {
        assert!(t["settings"].as_str().unwrap().contains("lr = 1e30"), "{t}");
        assert!(t["error"].as_str().unwrap().contains("non-finite"), "{t}");
    }
    let confs = report["configurations"].as_array().unwrap();
    assert_eq!(confs.len(), 2);
    let (good, bad): (Vec<&Value>, Vec<&Value>) = confs
        .iter()
        .partition(|c| c["settings"]["lr"].as_f64() == Some(1e-3));
    let (good, bad) = (good[0], bad[0]);
    assert_eq!(bad["seeds"], serde_json::json!([]));
    assert_eq!(bad["failed_trials"].as_array().unwrap().len(), 2);
    assert!(bad["metrics"]["mof"]["mean"].is_null());
    assert_eq!(bad["metrics"]["mof"]["n"], 0);
    assert_eq!(good["seeds"], serde_json::json!([0, 1]));
    assert!(good["failed_trials"].as_array().unwrap().is_empty());
    let ok_mofs: Vec<f64> = direct
        .iter()
        .filter(|t| t.status == "ok")
        .map(|t| {
            assert_eq!(t.lr, 1e-3);
            t.metrics["mof"].unwrap()
        })
        .collect();
    assert!(close(
        good["metrics"]["mof"]["mean"].as_f64().unwrap(),
        mean(&ok_mofs)
    ));
    for b in report["best"].as_array().unwrap() {
        assert_eq!(b["configurations"], serde_json::json!([good["id"]]), "{b}");
    }
    let csv = std::fs::read_to_string(out.join("report/configurations.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let col = |name: &str| rows[0].iter().position(|c| *c == name).unwrap();
    let (lr, seeds, failed) = (col("lr"), col("seeds"), col("failed"));
    let bad_row = rows[1..]
        .iter()
        .find(|r| r[lr].parse::<f32>().unwrap() == 1e30)
        .unwrap();
    assert_eq!((bad_row[seeds], bad_row[failed]), ("0", "2"), "{csv}");
    let text = ok(&["report", s(&out)]);
    assert!(
        text.contains("2 ok, 2 failed") && text.contains("failed trials (counted, not averaged)"),
        "{text}"
    );
    // the failed setting is named on the picture, not drawn
    assert_texts(
        &out.join("report/f/demo"),
        "mof_vs_lr",
        &["lr", "0.001"],
        &["not drawn (no successful seed): lr = 1e30"],
    );
}

#[test]
fn errors_name_the_folder_and_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("sweep=x")).unwrap();
    let e = fails(&["report", s(&empty)]);
    assert!(
        e.contains("no trial.parquet under") && e.contains(s(&empty)),
        "{e}"
    );
    let missing = tmp.path().join("missing");
    let e = fails(&["report", s(&missing)]);
    assert!(
        e.contains(s(&missing)) && e.contains("does not exist"),
        "{e}"
    );
    let bad = tmp.path().join("bad");
    let trial = bad.join("sweep=x").join("trial=0");
    std::fs::create_dir_all(&trial).unwrap();
    std::fs::write(trial.join("trial.parquet"), b"not parquet").unwrap();
    let e = fails(&["report", s(&bad)]);
    assert!(e.contains(s(&trial.join("trial.parquet"))), "{e}");
    assert!(!bad.join("report").exists(), "nothing written");
    let e = fails(&["report", s(&bad), "--by", "accuracy"]);
    assert!(e.contains("accuracy") && e.contains("video_mof"), "{e}");
    let r = clot(&["report", "--help"]);
    assert!(String::from_utf8_lossy(&r.stdout).contains("--by"));
}
