//! Every kind of bad input gives a clear error naming the file, line/row and what was expected,
//! and never a panic.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clot_datasets::{
    DatasetError, ParquetCompression, ReadOptions, SynthConfig, generate, read_parquet,
    read_standard, write_parquet,
};

/// A small valid layout: activity `act`, videos `a` and `b`, 3 frames each, D = 2.
struct Layout {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Layout {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("DS");
        let l = Layout { _tmp: tmp, dir };
        l.write("mapping/mapping.txt", "0 SIL\n1 x\n1 x_alias\n");
        for v in ["a", "b"] {
            l.write(&format!("features/act/{v}.txt"), "0 0\n1.5 2\n3 4e-1\n");
            l.write(&format!("groundTruth/{v}"), "SIL\nx\nx_alias\n");
        }
        l
    }

    fn write(&self, rel: &str, text: &str) {
        self.write_bytes(rel, text.as_bytes());
    }

    fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, bytes).expect("write");
    }

    fn read(&self) -> Result<clot_datasets::Dataset, DatasetError> {
        read_standard(&self.dir, &ReadOptions::default()).map(|(d, _)| d)
    }

    fn err(&self) -> String {
        self.read().expect_err("must fail").to_string()
    }
}

fn has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{msg}` should mention `{p}`");
    }
}

#[test]
fn valid_layout_reads() {
    let l = Layout::new();
    let ds = l.read().expect("valid");
    assert_eq!(ds.videos.len(), 2);
    assert_eq!(
        ds.videos[0].labels.as_ref().expect("gt").as_slice(),
        &[0, 1, 1]
    );
    assert_eq!(ds.videos[0].zero_rows(), (1, 1));
}

#[test]
fn missing_folder_and_mapping() {
    let e = read_standard(Path::new("/nonexistent/DS"), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    has(&e, &["dataset folder not found", "/nonexistent/DS"]);
    let l = Layout::new();
    std::fs::remove_file(l.dir.join("mapping/mapping.txt")).expect("rm");
    has(&l.err(), &["mapping file not found", "mapping/mapping.txt"]);
}

#[test]
fn ground_truth_is_optional() {
    // no groundTruth/ and no mapping/: every video unlabelled
    let l = Layout::new();
    std::fs::remove_dir_all(l.dir.join("groundTruth")).expect("rm");
    std::fs::remove_dir_all(l.dir.join("mapping")).expect("rm");
    let (ds, report) = read_standard(&l.dir, &ReadOptions::default()).expect("unlabelled");
    assert_eq!(ds.videos.len(), 2);
    assert!(ds.videos.iter().all(|v| v.labels.is_none()));
    assert_eq!(report.unlabelled, ["a", "b"]);
    // one video without its ground-truth file: that one is unlabelled, the other keeps labels
    let l = Layout::new();
    std::fs::remove_file(l.dir.join("groundTruth/b")).expect("rm");
    let (ds, report) = read_standard(&l.dir, &ReadOptions::default()).expect("partly labelled");
    assert!(ds.videos[0].labels.is_some() && ds.videos[1].labels.is_none());
    assert_eq!(report.unlabelled, ["b"]);
    // ground truth without a mapping is still an error
    let l = Layout::new();
    std::fs::remove_dir_all(l.dir.join("mapping")).expect("rm");
    has(&l.err(), &["mapping file not found"]);
}

#[test]
fn bad_videos_are_skipped_and_reported_on_request() {
    let l = Layout::new();
    l.write("features/act/b.txt", "0 0\n1 abc\n3 4\n");
    l.write("features/act/c.txt", "0 0 1\n1 2 3\n3 4 5\n");
    l.write("groundTruth/c", "SIL\nx\nx\n");
    assert!(
        l.read().is_err(),
        "without the option a bad video fails the dataset"
    );
    let opts = ReadOptions {
        skip_bad_videos: true,
        ..ReadOptions::default()
    };
    let (ds, report) = read_standard(&l.dir, &opts).expect("skips");
    assert_eq!(ds.videos.len(), 1);
    assert_eq!(ds.videos[0].name, "a");
    let names: Vec<&str> = report.skipped.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(names, ["b", "c"]);
    has(&report.skipped[0].1, &["b.txt:2", "`abc`"]);
    has(&report.skipped[1].1, &["dimension 3", "expected 2"]);
}

#[test]
fn label_not_in_mapping() {
    let l = Layout::new();
    l.write("groundTruth/b", "SIL\ny\nx\n");
    has(&l.err(), &["groundTruth/b:2", "`y`", "mapping.txt"]);
}

#[test]
fn non_numeric_token_and_ragged_row() {
    let l = Layout::new();
    l.write("features/act/a.txt", "0 0\n1 abc\n3 4\n");
    has(&l.err(), &["a.txt:2", "column 2", "`abc`", "not a number"]);
    let l = Layout::new();
    l.write("features/act/b.txt", "0 0\n1 2\n3 4 5\n");
    has(&l.err(), &["b.txt:3", "3 values, expected 2"]);
}

#[test]
fn nan_and_inf_fail_unless_zeroing_is_opted_in() {
    let l = Layout::new();
    l.write("features/act/a.txt", "0 0\n1 nan\n3 inf\n");
    has(
        &l.err(),
        &["a.txt", "row 2, column 2", "NaN", "--zero-non-finite"],
    );
    let opts = ReadOptions {
        zero_non_finite: true,
        ..ReadOptions::default()
    };
    let (ds, report) = read_standard(&l.dir, &opts).expect("opt-in");
    assert_eq!(report.zeroed_non_finite, 2);
    assert_eq!(
        ds.videos[0].features.as_slice(),
        &[0.0, 0.0, 1.0, 0.0, 3.0, 0.0]
    );
}

#[test]
fn fewer_feature_rows_fail_more_are_truncated() {
    let l = Layout::new();
    l.write("features/act/a.txt", "0 0\n1 2\n");
    has(&l.err(), &["video `a`", "2 feature rows", "3 labels"]);
    let l = Layout::new();
    l.write("features/act/a.txt", "0 0\n1 2\n3 4\n5 6\n7 8\n");
    let (ds, report) = read_standard(&l.dir, &ReadOptions::default()).expect("more rows are fine");
    assert_eq!(ds.videos[0].frames(), 3);
    assert_eq!(report.dropped_extra_rows, 2);
    assert_eq!(ds.videos[0].features.row(2), &[3.0, 4.0]);
}

#[test]
fn empty_video() {
    let l = Layout::new();
    l.write("features/act/a.txt", "\n");
    has(&l.err(), &["video `a` is empty", "a.txt"]);
    let l = Layout::new();
    l.write("groundTruth/a", "");
    has(&l.err(), &["video `a` is empty", "groundTruth/a"]);
}

#[test]
fn dimension_mismatch_between_videos_and_with_preset() {
    let l = Layout::new();
    l.write("features/act/b.txt", "0 0 0\n1 2 3\n3 4 5\n");
    has(
        &l.err(),
        &["video `b`", "dimension 3, expected 2", "as video `a`"],
    );
    let l = Layout::new();
    let opts = ReadOptions::for_preset(clot_datasets::preset("breakfast").expect("p"));
    let opts = ReadOptions {
        activity_rule: clot_datasets::ActivityRule::Folder,
        ..opts
    };
    let e = read_standard(&l.dir, &opts).unwrap_err().to_string();
    has(
        &e,
        &[
            "video `a`",
            "dimension 2, expected 64",
            "preset `breakfast`",
        ],
    );
}

fn npy(descr: &str, shape: (usize, usize), data: &[u8]) -> Vec<u8> {
    clot_datasets::npy::encode_npy(descr, false, shape, data)
}

#[test]
fn npy_features_and_truncated_or_unreadable_npy() {
    let l = Layout::new();
    std::fs::remove_file(l.dir.join("features/act/a.txt")).expect("rm");
    let vals: Vec<u8> = [0.0f64, 0.0, 1.5, 2.0, 3.0, 0.4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    l.write_bytes("features/act/a.npy", &npy("<f8", (3, 2), &vals));
    let ds = l.read().expect("npy reads");
    assert_eq!(
        ds.videos[0].features.as_slice(),
        ds.videos[1].features.as_slice()
    );
    l.write_bytes("features/act/a.npy", &npy("<f8", (3, 2), &vals[..30]));
    has(&l.err(), &["a.npy", "ends early"]);
    l.write_bytes("features/act/a.npy", b"garbage");
    has(&l.err(), &["a.npy", "not a readable .npy"]);
}

#[test]
fn duplicate_video_names() {
    let l = Layout::new();
    l.write("features/other/a.txt", "0 0\n1 2\n3 4\n");
    has(
        &l.err(),
        &["duplicate video `a`", "act/a.txt", "other/a.txt"],
    );
    let l = Layout::new();
    let vals: Vec<u8> = [0.0f32; 6].iter().flat_map(|v| v.to_le_bytes()).collect();
    l.write_bytes("features/act/a.npy", &npy("<f4", (3, 2), &vals));
    has(&l.err(), &["duplicate video `a`"]);
}

#[test]
fn unknown_activity_lists_known_ones() {
    let l = Layout::new();
    let opts = ReadOptions {
        activities: vec!["tea".into()],
        ..ReadOptions::default()
    };
    let e = read_standard(&l.dir, &opts).unwrap_err().to_string();
    has(&e, &["unknown activity `tea`", "known: act"]);
}

#[test]
fn parquet_with_wrong_schema_or_version() {
    use arrow_array::{Int64Array, RecordBatch};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().expect("tmp");
    // a plain Parquet file that clot did not write
    let path = tmp.path().join("foreign.parquet");
    let batch =
        RecordBatch::try_from_iter([("video", Arc::new(Int64Array::from(vec![1i64])) as _)])
            .expect("batch");
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).expect("f"),
        batch.schema(),
        None,
    )
    .expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    let e = read_parquet(&path, &[], &[]).unwrap_err().to_string();
    has(&e, &["foreign.parquet", "clot.table"]);

    // right table name, wrong column type
    let mut schema = clot_schemas::Table::DatasetFrames.schema(2);
    let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[2] = arrow_schema::Field::new("frame", arrow_schema::DataType::Int64, false);
    schema = arrow_schema::Schema::new(fields).with_metadata(schema.metadata().clone());
    let path = tmp.path().join("wrongtype.parquet");
    let w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).expect("f"),
        Arc::new(schema),
        None,
    )
    .expect("writer");
    w.close().expect("close");
    let e = read_parquet(&path, &[], &[]).unwrap_err().to_string();
    has(&e, &["wrongtype.parquet", "`frame`", "Int64", "UInt32"]);

    // newer schema version
    let mut schema = clot_schemas::Table::DatasetFrames.schema(2);
    schema.metadata.insert(
        clot_schemas::KEY_SCHEMA_VERSION.to_string(),
        "99".to_string(),
    );
    let path = tmp.path().join("newer.parquet");
    let w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).expect("f"),
        Arc::new(schema),
        None,
    )
    .expect("writer");
    w.close().expect("close");
    let e = read_parquet(&path, &[], &[]).unwrap_err().to_string();
    has(&e, &["newer.parquet", "version 99", "upgrade"]);

    // truncated file
    let ds = generate(&SynthConfig {
        videos: 2,
        ..SynthConfig::demo()
    })
    .expect("gen");
    let path = tmp.path().join("cut.parquet");
    write_parquet(&ds, &path, ParquetCompression::Snappy).expect("write");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("cut");
    let e = read_parquet(&path, &[], &[]).unwrap_err().to_string();
    has(&e, &["cut.parquet"]);
}
