//! Round trips: synthetic data → standard layout → memory → Parquet → memory, bit-exact; and the
//! Parquet reader's video and column selection.

#![allow(clippy::unwrap_used)]

use clot_datasets::{
    ParquetCompression, ParquetSelection, ReadOptions, SynthConfig, generate, read_parquet,
    read_parquet_index, read_parquet_videos, read_standard, write_parquet, write_standard,
};

#[test]
fn synth_layout_parquet_round_trip_is_bit_exact() {
    let ds = generate(&SynthConfig {
        videos: 5,
        ..SynthConfig::demo()
    })
    .expect("gen");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("demo");
    write_standard(&ds, &dir).expect("layout");
    let (from_text, report) = read_standard(&dir, &ReadOptions::default()).expect("read layout");
    assert_eq!(report.dropped_extra_rows, 0);
    assert_eq!(from_text.videos, ds.videos, "text round trip is exact");
    assert_eq!(from_text.mapping, ds.mapping);
    let pq = tmp.path().join("demo.parquet");
    write_parquet(&from_text, &pq, ParquetCompression::Zstd).expect("parquet");
    let back = read_parquet(&pq, &[], &[]).expect("read parquet");
    assert_eq!(back.videos, ds.videos);
    assert_eq!(
        (back.dim, back.mapping.clone()),
        (ds.dim, ds.mapping.clone())
    );
    // no temporary files are left behind
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn parquet_reader_loads_only_what_is_asked() {
    let ds = generate(&SynthConfig {
        videos: 6,
        ..SynthConfig::demo()
    })
    .expect("gen");
    let tmp = tempfile::tempdir().expect("tmp");
    let pq = tmp.path().join("d.parquet");
    write_parquet(&ds, &pq, ParquetCompression::Snappy).expect("write");
    let index = read_parquet_index(&pq).expect("index");
    assert_eq!(index.videos.len(), 6);
    for (i, v) in index.videos.iter().enumerate() {
        assert_eq!(v.row_groups, (i, i + 1), "one row group per video");
        assert_eq!(v.frames, ds.videos[i].frames());
    }
    let pick = vec![ds.videos[4].name.clone(), ds.videos[1].name.clone()];
    let sel = ParquetSelection {
        videos: pick,
        features: false,
        ..ParquetSelection::default()
    };
    let (_, got) = read_parquet_videos(&pq, &sel).expect("select");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].name, ds.videos[1].name, "file order");
    assert!(got[0].features.is_none());
    assert_eq!(got[1].labels.as_ref(), ds.videos[4].labels.as_ref());
    let sel = ParquetSelection {
        labels: false,
        ..ParquetSelection::default()
    };
    let (_, got) = read_parquet_videos(&pq, &sel).expect("features only");
    assert!(
        got.iter()
            .all(|v| v.labels.is_none() && v.features.is_some())
    );
    assert_eq!(got[5].features.as_ref(), Some(&ds.videos[5].features));
    let bad = ParquetSelection {
        videos: vec!["nope".into()],
        ..ParquetSelection::default()
    };
    let e = read_parquet_videos(&pq, &bad).unwrap_err().to_string();
    assert!(e.contains("unknown video `nope`"), "{e}");
}
