//! Python interop: pyarrow reads the Parquet dataset clot writes, and numpy's `loadtxt` reads the
//! standard layout it writes, to the same float32 values. Skips when python3 with numpy and
//! pyarrow is absent, unless `CLOT_REQUIRE_PYTHON=1` (set by `.ci/run`), which makes that a failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::python_has;

const SCRIPT: &str = r#"
import sys, glob, os, json
import numpy as np
import pyarrow.parquet as pq
layout, parquet = sys.argv[1], sys.argv[2]
t = pq.read_table(parquet)
md = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
assert md["clot.table"] == "dataset_frames", md
assert md["clot.schema_version"] == "1", md
index = json.loads(md["clot.dataset"])
feats = t.column("features").combine_chunks()
assert feats.type.list_size == index["dim"] == 64, feats.type
videos = t.column("video").to_pylist()
frames = t.column("frame").to_numpy()
X = feats.flatten().to_numpy().reshape(-1, 64)
assert X.dtype == np.float32
checked = 0
for f in sorted(glob.glob(os.path.join(layout, "features", "*", "*.txt"))):
    name = os.path.splitext(os.path.basename(f))[0]
    ref = np.loadtxt(f).astype(np.float32)
    rows = np.array([v == name for v in videos])
    assert (frames[rows] == np.arange(rows.sum())).all()
    assert np.array_equal(X[rows].view(np.uint32), ref.view(np.uint32)), name
    labels = t.column("label").to_numpy()[rows]
    names = [l.strip() for l in open(os.path.join(layout, "groundTruth", name))]
    mapping = dict(reversed(l.split()) for l in open(os.path.join(layout, "mapping", "mapping.txt")))
    assert [int(mapping[n]) for n in names] == labels.tolist()
    checked += 1
print(json.dumps({"videos": checked, "rows": len(videos)}))
"#;

const RUN_SCRIPT: &str = r#"
import sys, json, os
import numpy as np
import pyarrow.parquet as pq
from safetensors.numpy import load_file
from safetensors import safe_open
run = sys.argv[1]
tables = {}
for name, table in [("predictions", "predictions"), ("video_metrics", "video_metrics"),
                    ("summary", "run_summary"), ("training_curve", "training_curve")]:
    t = pq.read_table(os.path.join(run, name + ".parquet"))
    md = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
    assert md["clot.table"] == table, md
    assert md["clot.mode"] == "clot" and md["clot.seed"] == "0", md
    assert md["clot.stages"].split(",")[:3] == ["load", "actions", "encode"], md
    tables[name] = t
p = tables["predictions"]
conf = p.column("confidence").to_numpy()
assert ((conf >= 0) & (conf <= 1.0001)).all()
s = tables["summary"].to_pylist()[0]
vm = tables["video_metrics"]
assert abs(np.mean(vm.column("mof").to_numpy()) - s["video_mof"]) < 1e-12
ck = load_file(os.path.join(run, "checkpoint.safetensors"))
shapes = {k: list(v.shape) for k, v in ck.items()}
want = {"mlp.0.weight": [128, 64], "mlp.0.bias": [128], "mlp.2.weight": [40, 128],
        "mlp.2.bias": [40], "clusters": [7, 40], "dispatch.sim_alpha": [1],
        "decoder.layers.0.self_attn.in_proj_weight": [120, 40],
        "decoder.layers.0.linear1.weight": [160, 40], "decoder.norm.weight": [40],
        "query_embed": [7, 40], "query_pos": [7, 40]}
assert all(shapes[k] == v for k, v in want.items()), shapes
with safe_open(os.path.join(run, "checkpoint.safetensors"), "np") as f:
    assert "epochs = 2" in f.metadata()["clot.config"]
print(json.dumps({"frames": p.num_rows, "videos": vm.num_rows, "steps": tables["training_curve"].num_rows}))
"#;

/// pyarrow reads every table of a run folder, and safetensors (numpy) reads its checkpoint with
/// PyTorch's state-dict names and shapes.
#[test]
fn python_reads_a_run_folder() {
    if !python_has("numpy, pyarrow, safetensors") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let run = tmp.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_clot"))
        .args([
            "-q",
            "run",
            "--epochs",
            "2",
            "--out",
            run.to_str().expect("p"),
        ])
        .output()
        .expect("clot");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("python3")
        .arg("-c")
        .arg(RUN_SCRIPT)
        .arg(&run)
        .output()
        .expect("python");
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["frames"], 10955);
    assert_eq!(v["videos"], 16);
    assert_eq!(v["steps"], 16);
}

#[test]
fn pyarrow_and_numpy_read_what_clot_writes() {
    if !python_has("numpy, pyarrow") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let layout = tmp.path().join("layout");
    let pq = tmp.path().join("d.parquet");
    let clot = env!("CARGO_BIN_EXE_clot");
    for args in [
        vec![
            "-q",
            "synth",
            "--videos",
            "5",
            "--out",
            layout.to_str().expect("p"),
        ],
        vec![
            "-q",
            "convert",
            layout.to_str().expect("p"),
            "--out",
            pq.to_str().expect("p"),
        ],
    ] {
        let o = Command::new(clot).args(&args).output().expect("clot");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&layout)
        .arg(&pq)
        .output()
        .expect("python");
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["videos"], 5);
}
