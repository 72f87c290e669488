//! The `clot` binary end to end: synth → convert → inspect, errors with exit code 2, help text.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, json, ok};

use std::path::Path;

#[test]
fn synth_convert_inspect_agree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("layout");
    let pq = tmp.path().join("d.parquet");
    let (d, p) = (dir.to_str().expect("p"), pq.to_str().expect("p"));
    let out = ok(&["synth", "--videos", "4", "--seed", "3", "--out", d]);
    assert!(out.contains("4 videos"), "{out}");
    assert!(Path::new(d).join("mapping/mapping.txt").is_file());
    assert!(Path::new(d).join("features/demo").is_dir());
    let out = ok(&["convert", d, "--out", p, "--compression", "zstd"]);
    assert!(
        out.contains("converted") && out.contains("4 videos"),
        "{out}"
    );
    let a = json(&["inspect", d, "--json"]);
    let b = json(&["inspect", p, "--json"]);
    assert_eq!(a["summary"]["per_video"], b["summary"]["per_video"]);
    assert_eq!(
        a["summary"]["label_histogram"],
        b["summary"]["label_histogram"]
    );
    assert_eq!(b["summary"]["videos"], 4);
    // synth straight to Parquet gives the same data as layout → convert
    let direct = tmp.path().join("direct.parquet");
    ok(&[
        "synth",
        "--videos",
        "4",
        "--seed",
        "3",
        "--out",
        direct.to_str().expect("p"),
    ]);
    let mut c = json(&["inspect", direct.to_str().expect("p"), "--json"]);
    assert_eq!(c["summary"]["name"], "demo");
    c["summary"]["name"] = b["summary"]["name"].clone(); // the layout's name is its folder
    assert_eq!(b["summary"], c["summary"]);
    // a non-empty output folder is refused rather than mixed
    let e = fails(&["synth", "--out", d]);
    assert!(e.contains("not empty"), "{e}");
}

#[test]
fn demo_is_not_solved_by_trivial_baselines() {
    let v = json(&["inspect", "demo", "--json", "--baselines"]);
    let b = &v["baselines"][0];
    assert_eq!(b["k"], 7);
    let eq = b["equal_split_mof"].as_f64().expect("f64");
    let km = b["kmeans_mof"].as_f64().expect("f64");
    assert!(eq > 0.2 && eq < 0.6, "equal split {eq}");
    assert!(km > 0.2 && km < 0.7, "k-means {km}");
    assert_eq!(v["summary"]["videos"], 16);
}

#[test]
fn errors_name_the_problem_and_exit_2() {
    let e = fails(&["inspect", "/nonexistent/Breakfast"]);
    assert!(
        e.starts_with("error: reading dataset /nonexistent/Breakfast"),
        "{e}"
    );
    assert!(e.contains("dataset folder not found"), "{e}");
    let e = fails(&["inspect", "--preset", "nope"]);
    assert!(
        e.contains("unknown preset `nope`") && e.contains("breakfast"),
        "{e}"
    );
    let e = fails(&["convert", "demo", "--out", "x.csv"]);
    assert!(e.contains("must end in .parquet"), "{e}");
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "videos = 3\nwobble = 1\n").expect("write");
    let e = fails(&[
        "synth",
        "--config",
        cfg.to_str().expect("p"),
        "--out",
        "unused",
    ]);
    assert!(e.contains("bad.toml") && e.contains("wobble"), "{e}");
    let e = fails(&["inspect", "demo", "--activity", "tea"]);
    assert!(e.contains("no videos selected"), "{e}");
}

#[test]
fn help_explains_every_command() {
    let h = ok(&["--help"]);
    for cmd in ["inspect", "convert", "synth"] {
        assert!(h.contains(cmd), "{h}");
    }
    let h = ok(&["convert", "--help"]);
    assert!(
        h.contains("--preset") && h.contains("--activity") && h.contains("--zero-non-finite"),
        "{h}"
    );
}

#[test]
fn real_breakfast_inspect() {
    let Some(shared) = clot_datasets::shared::require(&["data/Breakfast"]) else {
        return;
    };
    let root = shared.join("data");
    let v = json(&[
        "inspect",
        "--data",
        root.to_str().expect("p"),
        "--preset",
        "breakfast",
        "--activity",
        "coffee",
        "--json",
    ]);
    assert_eq!(v["summary"]["frames"], 3350);
    assert_eq!(v["summary"]["dim"], 64);
    assert_eq!(
        v["summary"]["classes_present"].as_array().expect("a").len(),
        5
    );
}
