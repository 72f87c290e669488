//! Python interop: pyarrow reads the Parquet dataset clot writes, and numpy's `loadtxt` reads the
//! standard layout it writes, to the same float32 values. Skips when python3 with numpy and
//! pyarrow is absent, unless `CLOT_REQUIRE_PYTHON=1` (set by `.ci/run`), which makes that a failure.

#![allow(clippy::unwrap_used)]

use std::process::Command;

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

#[test]
fn pyarrow_and_numpy_read_what_clot_writes() {
    let required = std::env::var("CLOT_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let probe = Command::new("python3")
        .args(["-c", "import numpy, pyarrow"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            !required,
            "CLOT_REQUIRE_PYTHON=1 but python3 with numpy and pyarrow is missing"
        );
        eprintln!("SKIP: python3 with numpy and pyarrow not found");
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
