//! `clot sweep` end to end: plans, trial identity, equality with `clot train`, shards, failures,
//! and a sweep killed at any moment and resumed.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use common::{clot, fails, json, ok, python_has, read, s, write};

fn strings(b: &RecordBatch, col: &str) -> Vec<String> {
    let a = b.column_by_name(col).unwrap().as_string::<i32>();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

fn f64s(b: &RecordBatch, col: &str) -> Vec<Option<f64>> {
    let a = b
        .column_by_name(col)
        .unwrap()
        .as_primitive::<arrow_array::types::Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

fn i32s(b: &RecordBatch, col: &str) -> Vec<i32> {
    let a = b
        .column_by_name(col)
        .unwrap()
        .as_primitive::<arrow_array::types::Int32Type>();
    a.values().to_vec()
}

/// trial id → (status, mof) of every `trial.parquet` under `out`, failing on any trial present
/// twice or any file that does not read.
fn trials_in(out: &Path, sweep: &str) -> BTreeMap<String, (String, Option<f64>)> {
    let dir = out.join(format!("sweep={sweep}"));
    let mut found = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let d = e.unwrap().path();
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        let id = name
            .strip_prefix("trial=")
            .expect("only trial folders")
            .to_string();
        let files: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for f in &files {
            if f.ends_with(".parquet") {
                read(&d.join(f)); // every file whole
            }
        }
        if !files.iter().any(|f| f == "trial.parquet") {
            continue; // killed mid-trial: not done, to be run on resume
        }
        let b = read(&d.join("trial.parquet"));
        assert_eq!(b.num_rows(), 1);
        assert_eq!(strings(&b, "trial_id"), std::slice::from_ref(&id));
        let prev = found.insert(
            id.clone(),
            (strings(&b, "status")[0].clone(), f64s(&b, "mof")[0]),
        );
        assert!(prev.is_none(), "trial {id} twice");
    }
    found
}

const DEMO4: &str = "name = \"t\"\ndataset = \"demo\"\nepochs = 2\n[grid]\nmode = [\"clot\", \"asot\"]\nseed = [0, 1]\n";

#[test]
fn the_shipped_sweep_files_plan_and_ids_are_stable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let demo = root.join("examples/sweeps/demo.toml");
    let a = json(&["sweep", s(&demo), "--dry-run", "--json"]);
    assert_eq!(a.as_array().unwrap().len(), 4);
    let modes: Vec<&str> = a
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["config"]["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["clot", "clot", "asot", "asot"]);
    // the same trials from another file, in another order, have the same ids
    let tmp = tempfile::tempdir().unwrap();
    let other = write(
        tmp.path(),
        "other.toml",
        "dataset = \"demo\"\nepochs = 15\n[grid]\nseed = [1, 0]\nmode = [\"asot\", \"clot\"]\n",
    );
    let b = json(&["sweep", s(&other), "--dry-run", "--json"]);
    let ids = |v: &serde_json::Value| {
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trial"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&a), ids(&b));
    let text = ok(&["sweep", s(&demo), "--dry-run"]);
    assert!(
        text.contains("4 trials") && text.contains("mode = \"asot\""),
        "{text}"
    );
    assert!(!text.contains("0.6999"), "settings print as f32: {text}");
    // the Breakfast sweep plans against the real data where it is there
    if let Some(shared) = clot_datasets::shared::require(&["data/Breakfast"]) {
        let bf = root.join("examples/sweeps/breakfast.toml");
        let tmp_bf = write(
            tmp.path(),
            "bf.toml",
            &std::fs::read_to_string(bf)
                .unwrap()
                .replace("../../../shared/data", s(&shared.join("data"))),
        );
        let v = json(&["sweep", s(&tmp_bf), "--dry-run", "--json"]);
        assert_eq!(
            v.as_array().unwrap().len(),
            10,
            "coffee × 2 modes × 5 seeds"
        );
        assert_eq!(v[0]["activity"], "coffee");
        assert_eq!(v[0]["config"]["actions"], 7);
    }
}

#[test]
fn bad_sweep_files_fail_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let f = write(
        tmp.path(),
        "a.toml",
        "dataset = \"demo\"\n[grid]\nrhoo = [0.1]\n",
    );
    let e = fails(&["sweep", s(&f), "--out", s(&out)]);
    assert!(
        e.contains("grid.rhoo") && e.contains("did you mean `rho`"),
        "{e}"
    );
    let f = write(
        tmp.path(),
        "b.toml",
        "dataset = \"demo\"\nmode = \"asot\"\n[grid]\nwithout = [[\"swd\"]]\n",
    );
    let e = fails(&["sweep", s(&f), "--out", s(&out)]);
    assert!(e.contains("trial 1") && e.contains("asot graph"), "{e}");
    let f = write(
        tmp.path(),
        "c.toml",
        "dataset = \"demo\"\n[grid]\nalpha_eval = [0.5, 1.5]\n",
    );
    let e = fails(&["sweep", s(&f), "--out", s(&out)]);
    assert!(
        e.contains("trial 2") && e.contains("alpha_eval must be in [0, 1]"),
        "{e}"
    );
    let f = write(
        tmp.path(),
        "d.toml",
        "dataset = \"demo\"\n[grid]\nseed = []\n",
    );
    let e = fails(&["sweep", s(&f), "--out", s(&out)]);
    assert!(e.contains("empty list"), "{e}");
    let f = write(
        tmp.path(),
        "e.toml",
        "dataset = \"demo\"\n[grid]\nactions = [5, \"auto:20000-50000\"]\n",
    );
    let e = fails(&["sweep", s(&f), "--out", s(&out)]);
    assert!(
        e.contains("trial 2") && e.contains("choosing K for `demo`") && e.contains("20000"),
        "{e}"
    );
    assert!(!out.exists(), "nothing ran, nothing written");
}

/// `actions = "auto"` in a sweep: K̂ is estimated once per activity and range before anything
/// runs, each trial is the `clot train --actions auto` run bit for bit (and the same trial as the
/// one with `actions = K̂`), `trial.parquet` says how K was chosen, the trial folder holds the
/// score curve, and `clot report` draws it.
#[test]
fn actions_auto_trials_estimate_k_once_and_equal_clot_train() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "a.toml",
        "name = \"a\"\ndataset = \"demo\"\nepochs = 2\nactions = \"auto:2-10\"\n[grid]\nseed = [0, 1]\n",
    );
    let out = tmp.path().join("out");
    let run = clot(&["sweep", s(&f), "--out", s(&out), "--predictions"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("estimated from the features alone").count(),
        1,
        "one estimate for the two seeds: {stderr}"
    );
    let plan = json(&["sweep", s(&f), "--dry-run", "--json"]);
    let plan = plan.as_array().unwrap();
    assert_eq!(plan.len(), 2);
    let k = plan[0]["config"]["actions"].as_u64().unwrap();
    assert!((2..=10).contains(&k), "K̂ = {k}");
    assert_eq!(plan[0]["k_choice"]["k"], k);
    assert_eq!(plan[0]["k_choice"]["curve"].as_array().unwrap().len(), 9);
    // the same trial as one with K̂ given
    let fixed = write(
        tmp.path(),
        "f.toml",
        &format!(
            "name = \"a\"\ndataset = \"demo\"\nepochs = 2\nactions = {k}\n[grid]\nseed = [0, 1]\n"
        ),
    );
    let fixed = json(&["sweep", s(&fixed), "--dry-run", "--json"]);
    assert_eq!(plan[0]["trial"], fixed[0]["trial"]);
    assert!(fixed[0]["k_choice"].is_null());
    for t in plan {
        let id = t["trial"].as_str().unwrap();
        let seed = t["config"]["seed"].to_string();
        let dir = out.join("sweep=a").join(format!("trial={id}"));
        let row = read(&dir.join("trial.parquet"));
        assert_eq!(strings(&row, "k_range"), ["2-10"]);
        let estimated = row.column_by_name("k_estimated").unwrap().as_boolean();
        assert!(estimated.value(0));
        let actions = row
            .column_by_name("actions")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(actions.value(0) as u64, k);
        let train = tmp.path().join(format!("train-{id}"));
        let report = json(&[
            "train",
            "demo",
            "--epochs",
            "2",
            "--actions",
            "auto:2-10",
            "--seed",
            &seed,
            "--out",
            s(&train),
            "--json",
        ]);
        assert_eq!(report["config"]["actions"], k);
        assert_eq!(report["k_choice"]["curve"], t["k_choice"]["curve"]);
        let (a, b) = (
            read(&dir.join("predictions.parquet")),
            read(&train.join("predictions.parquet")),
        );
        assert_eq!(i32s(&a, "prediction"), i32s(&b, "prediction"), "trial {id}");
        let (a, b) = (
            read(&dir.join("k_choice.parquet")),
            read(&train.join("k_choice.parquet")),
        );
        assert_eq!(f64s(&a, "gap"), f64s(&b, "gap"));
    }
    ok(&["report", s(&out)]);
    let png = out
        .join("report")
        .join("a")
        .join("demo")
        .join("k_choice.png");
    assert!(png.is_file(), "{} missing", png.display());
    let texts = common::svg_texts(&png.with_extension("svg")).join(" ");
    assert!(
        texts.contains("choosing K without labels") && texts.contains(&format!("chosen K = {k}")),
        "{texts}"
    );
}

#[test]
fn a_trial_equals_clot_train_bit_for_bit_whatever_the_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "s.toml", DEMO4);
    let out1 = tmp.path().join("j1");
    let out2 = tmp.path().join("j2");
    ok(&[
        "sweep",
        s(&f),
        "--out",
        s(&out1),
        "--jobs",
        "1",
        "--predictions",
    ]);
    ok(&[
        "sweep",
        s(&f),
        "--out",
        s(&out2),
        "--jobs",
        "2",
        "--predictions",
    ]);
    let plan = json(&["sweep", s(&f), "--dry-run", "--json"]);
    for t in plan.as_array().unwrap() {
        let id = t["trial"].as_str().unwrap();
        let (mode, seed) = (
            t["config"]["mode"].as_str().unwrap(),
            t["config"]["seed"].to_string(),
        );
        let run = tmp.path().join(format!("train-{id}"));
        let report = json(&[
            "--threads",
            "1",
            "train",
            "demo",
            "--epochs",
            "2",
            "--mode",
            mode,
            "--seed",
            &seed,
            "--out",
            s(&run),
            "--json",
        ]);
        for out in [&out1, &out2] {
            let dir = out.join("sweep=t").join(format!("trial={id}"));
            let (a, b) = (
                read(&dir.join("predictions.parquet")),
                read(&run.join("predictions.parquet")),
            );
            assert_eq!(i32s(&a, "prediction"), i32s(&b, "prediction"), "trial {id}");
            let (a, b) = (
                read(&dir.join("training_curve.parquet")),
                read(&run.join("training_curve.parquet")),
            );
            assert_eq!(
                f64s(&a, "loss"),
                f64s(&b, "loss"),
                "trial {id}: losses bit for bit"
            );
            let row = read(&dir.join("trial.parquet"));
            assert_eq!(
                f64s(&row, "mof")[0].unwrap(),
                report["scores"]["activity"]["mof"].as_f64().unwrap()
            );
            assert_eq!(strings(&row, "mode"), [mode]);
        }
    }
}

#[test]
fn settings_are_typed_columns_and_failures_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    // lr 1e30 sends the embeddings to NaN: that trial fails, the other runs
    let f = write(
        tmp.path(),
        "s.toml",
        "name = \"f\"\ndataset = \"demo\"\nepochs = 1\nmode = \"asot\"\n[grid]\nlr = [1e-3, 1e30]\nrho = [0.15]\n",
    );
    let out = tmp.path().join("out");
    let e = fails(&["sweep", s(&f), "--out", s(&out)]);
    assert!(
        e.contains("1 of 2 trials failed") && e.contains("non-finite"),
        "{e}"
    );
    let found = trials_in(&out, "f");
    let statuses: Vec<&str> = found.values().map(|(st, _)| st.as_str()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "ok").count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == "failed").count(), 1);
    let dir = out.join("sweep=f");
    for (id, (status, mof)) in &found {
        let row = read(&dir.join(format!("trial={id}")).join("trial.parquet"));
        let schema = row.schema();
        let path = dir.join(format!("trial={id}")).join("trial.parquet");
        let f = std::fs::File::open(&path).unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let md = builder.schema().metadata().clone();
        for key in [
            "clot.table",
            "clot.schema_version",
            "clot.crate_version",
            "clot.git_revision",
            "clot.config_hash",
            "clot.seed",
            "clot.device",
        ] {
            assert!(
                md.get(key).is_some_and(|v| !v.is_empty()),
                "{key} missing: {md:?}"
            );
        }
        assert_eq!(md["clot.table"], "sweep_trial");
        let rev = &md["clot.git_revision"];
        assert!(
            rev == "unknown" || (rev.len() == 12 && rev.chars().all(|c| c.is_ascii_hexdigit())),
            "{rev}"
        );
        let ty = |c: &str| schema.field_with_name(c).unwrap().data_type().clone();
        assert_eq!(ty("rho"), arrow_schema::DataType::Float32);
        assert_eq!(ty("seed"), arrow_schema::DataType::Int64);
        assert_eq!(ty("standardise"), arrow_schema::DataType::Boolean);
        assert_eq!(ty("mode"), arrow_schema::DataType::Utf8);
        let rho = row
            .column_by_name("rho")
            .unwrap()
            .as_primitive::<arrow_array::types::Float32Type>();
        assert_eq!(rho.value(0), 0.15);
        assert_eq!(strings(&row, "mlp"), ["64,128,40"]);
        assert_eq!(status == "ok", mof.is_some());
        // the label-free signals: the final loss and the objective at the final plans
        let objective = f64s(&row, "final_ot_objective")[0];
        assert_eq!(
            status == "ok",
            objective.is_some_and(f64::is_finite),
            "{objective:?}"
        );
        if status == "failed" {
            let err = row.column_by_name("error").unwrap().as_string::<i32>();
            assert!(err.value(0).contains("non-finite"), "{}", err.value(0));
        }
    }
    // a second run refuses to mix; --resume runs only what is not done (the failed trial)
    let e = fails(&["sweep", s(&f), "--out", s(&out)]);
    assert!(e.contains("--resume"), "{e}");
    let e = fails(&["sweep", s(&f), "--out", s(&out), "--resume"]);
    assert!(e.contains("1 of 1 trials failed"), "{e}");
}

#[test]
fn shards_together_equal_one_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "s.toml", DEMO4);
    let whole = tmp.path().join("whole");
    ok(&["sweep", s(&f), "--out", s(&whole), "--quiet"]);
    let sharded = tmp.path().join("sharded");
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_clot"))
                .args([
                    "sweep",
                    s(&f),
                    "--out",
                    s(&sharded),
                    "--quiet",
                    "--jobs",
                    "1",
                ])
                .arg("--shard")
                .arg(format!("{i}/3"))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let (a, b) = (trials_in(&whole, "t"), trials_in(&sharded, "t"));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "same trials, same results");
    // the Slurm array's variables choose the shard the same way
    let slurm = tmp.path().join("slurm");
    for i in 0..3 {
        let st = Command::new(env!("CARGO_BIN_EXE_clot"))
            .args(["sweep", s(&f), "--out", s(&slurm), "--quiet"])
            .env("SLURM_ARRAY_TASK_ID", (i + 1).to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .status()
            .unwrap();
        assert!(st.success());
    }
    assert_eq!(trials_in(&slurm, "t"), a);
}

#[test]
fn a_sweep_killed_at_any_moment_resumes_to_every_trial_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "s.toml",
        "name = \"k\"\ndataset = \"demo\"\nepochs = 2\nmode = \"asot\"\n[grid]\nseed = [0, 1, 2, 3, 4, 5]\n",
    );
    let reference = tmp.path().join("ref");
    ok(&[
        "sweep",
        s(&f),
        "--out",
        s(&reference),
        "--quiet",
        "--jobs",
        "1",
    ]);
    let expected = trials_in(&reference, "k");
    assert_eq!(expected.len(), 6);
    for (n, delay_ms) in [50u64, 400, 900, 1600].into_iter().enumerate() {
        let out = tmp.path().join(format!("killed{n}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_clot"))
            .args(["sweep", s(&f), "--out", s(&out), "--quiet", "--jobs", "2"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        if out.join("sweep=k").exists() {
            trials_in(&out, "k"); // what is there reads whole
        }
        let r = clot(&[
            "sweep",
            s(&f),
            "--out",
            s(&out),
            "--quiet",
            "--resume",
            "--jobs",
            "2",
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert_eq!(trials_in(&out, "k"), expected, "killed after {delay_ms} ms");
    }
}

#[test]
fn the_python_examples_read_a_sweep_with_polars_and_duckdb() {
    if !python_has("polars, duckdb") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "s.toml", DEMO4);
    let out = tmp.path().join("out");
    ok(&["sweep", s(&f), "--out", s(&out), "--quiet"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python");
    for script in ["sweep_polars.py", "sweep_duckdb.py"] {
        let r = Command::new("python3")
            .arg(root.join(script))
            .arg(&out)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(
            r.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(
            text.contains("best") && text.contains("over 2 seeds"),
            "{script}: {text}"
        );
    }
}

/// The shipped Slurm script as a 3-task job array on a real (one-node) cluster: `.ci/run` starts
/// one with `.ci/slurm-up` and sets `CLOT_SLURM=1`; elsewhere this skips.
#[test]
fn the_slurm_job_array_gives_the_results_of_one_unsharded_run() {
    if std::env::var("CLOT_SLURM").ok().as_deref() != Some("1") {
        eprintln!("SKIP: no Slurm cluster (run .ci/slurm-up and set CLOT_SLURM=1)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "s.toml", DEMO4);
    let whole = tmp.path().join("whole");
    // the script runs each task with --threads-per-trial $SLURM_CPUS_PER_TASK (2)
    ok(&[
        "sweep",
        s(&f),
        "--out",
        s(&whole),
        "--quiet",
        "--threads-per-trial",
        "2",
    ]);
    let results = tmp.path().join("slurm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/slurm/sweep.sbatch");
    let st = Command::new("sbatch")
        .args(["--wait", "--array=0-2", "--mem=1G"])
        .arg(format!("--output={}/task-%a.out", s(tmp.path())))
        .arg(&script)
        .arg(&f)
        .arg(&results)
        .env("CLOT", env!("CARGO_BIN_EXE_clot"))
        .status()
        .unwrap();
    let logs: String = (0..3)
        .map(|i| {
            std::fs::read_to_string(tmp.path().join(format!("task-{i}.out"))).unwrap_or_default()
        })
        .collect();
    assert!(st.success(), "sbatch failed; task logs:\n{logs}");
    assert_eq!(
        trials_in(&results, "t"),
        trials_in(&whole, "t"),
        "task logs:\n{logs}"
    );
}

/// The Kubernetes manifest: an Indexed Job whose shard count is its completions, running
/// `clot sweep --resume` into the mounted results volume.
#[test]
fn the_kubernetes_manifest_wires_the_index_to_the_shards() {
    if !python_has("yaml") {
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/sweep-job.yaml");
    let check = r#"
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job", job
spec = job["spec"]
assert spec["completionMode"] == "Indexed", spec
c = spec["template"]["spec"]["containers"][0]
env = {e["name"]: e["value"] for e in c["env"]}
assert int(env["CLOT_SHARDS"]) == spec["completions"], (env, spec["completions"])
cmd = c["command"]
assert cmd[0] == "clot" and "sweep" in cmd and "--resume" in cmd, cmd
out = cmd[cmd.index("--out") + 1]
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
assert out in mounts, (out, mounts)
vols = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
assert "persistentVolumeClaim" in vols[mounts[out]], vols
sweep_file = cmd[cmd.index("sweep") + 1]
assert any(sweep_file.startswith(m + "/") for m in mounts), (sweep_file, mounts)
print("ok")
"#;
    let r = Command::new("python3")
        .args(["-c", check])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        r.status.success() && String::from_utf8_lossy(&r.stdout).contains("ok"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn activity_all_is_one_trial_per_activity() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("three.parquet");
    let text = ok(&[
        "synth",
        "--activities",
        "3",
        "--videos",
        "3",
        "--out",
        s(&data),
    ]);
    assert!(
        text.contains("9 videos") && text.contains("3 activities"),
        "{text}"
    );
    let v = json(&["inspect", s(&data), "--json"]);
    assert_eq!(
        v["summary"]["activities"],
        serde_json::json!({"demo0": 3, "demo1": 3, "demo2": 3})
    );
    let f = write(
        tmp.path(),
        "all.toml",
        &format!(
            "dataset = {:?}\nactivity = \"all\"\nepochs = 1\nmode = \"asot\"\n",
            s(&data)
        ),
    );
    let plan = json(&["sweep", s(&f), "--dry-run", "--json"]);
    let acts: Vec<&str> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["activity"].as_str().unwrap())
        .collect();
    assert_eq!(acts, ["demo0", "demo1", "demo2"]);
}

#[test]
fn a_parquet_sweep_reads_each_activity_once_and_equals_the_folder_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let (pq, folder) = (tmp.path().join("three.parquet"), tmp.path().join("three"));
    for out in [&pq, &folder] {
        ok(&[
            "synth",
            "--activities",
            "3",
            "--videos",
            "3",
            "--out",
            s(out),
        ]);
    }
    let sweep = |data: &Path, out: &Path| {
        let f = write(
            tmp.path(),
            "all.toml",
            &format!(
                "name = \"a\"\ndataset = {:?}\nactivity = \"all\"\nepochs = 1\n[grid]\nmode = [\"clot\", \"asot\"]\nseed = [0, 1]\n",
                s(data)
            ),
        );
        ok(&["sweep", s(&f), "--out", s(out), "--jobs", "2"])
    };
    let text = sweep(&pq, &tmp.path().join("from-parquet"));
    // 12 trials, activity by activity: each activity's row groups read once
    assert!(
        text.contains("12 ran") && text.contains("3 activity reads"),
        "{text}"
    );
    sweep(&folder, &tmp.path().join("from-folder"));
    let (a, b) = (
        trials_in(&tmp.path().join("from-parquet"), "a"),
        trials_in(&tmp.path().join("from-folder"), "a"),
    );
    assert_eq!(a.len(), 12);
    // the folder's dataset is named after the folder, so ids differ; the results do not
    let mofs = |m: &BTreeMap<String, (String, Option<f64>)>| {
        let mut v: Vec<u64> = m.values().map(|(_, x)| x.unwrap().to_bits()).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(mofs(&a), mofs(&b));
    // `actions = "auto"` plans from a Parquet file's features as from the folder's
    let plan_auto = |data: &Path| {
        let f = write(
            tmp.path(),
            "auto.toml",
            &format!(
                "name = \"k\"\ndataset = {:?}\nactivity = \"all\"\nactions = \"auto:2-8\"\n",
                s(data)
            ),
        );
        let plan = json(&["sweep", s(&f), "--dry-run", "--json"]);
        plan.as_array()
            .unwrap()
            .iter()
            .map(|t| (t["activity"].clone(), t["k_choice"].clone()))
            .collect::<Vec<_>>()
    };
    let (from_pq, from_folder) = (plan_auto(&pq), plan_auto(&folder));
    assert_eq!(from_pq.len(), 3);
    assert!(from_pq.iter().all(|(_, k)| k["k"].is_u64()), "{from_pq:?}");
    let curves = |v: &[(serde_json::Value, serde_json::Value)]| {
        v.iter()
            .map(|(a, k)| (a.to_string(), k["k"].clone(), k["curve"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(curves(&from_pq), curves(&from_folder));
}
