//! The real Breakfast "coffee" videos in `../shared/data/Breakfast` (skips when absent).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use clot_datasets::{
    ParquetCompression, ReadOptions, preset, read_parquet, read_standard, write_parquet,
};

fn breakfast() -> Option<PathBuf> {
    clot_datasets::shared::require(&["data/Breakfast"]).map(|root| root.join("data/Breakfast"))
}

#[test]
fn breakfast_coffee_reads_correctly() {
    let Some(dir) = breakfast() else { return };
    let p = preset("breakfast").expect("preset");
    let opts = ReadOptions {
        activities: vec!["coffee".into()],
        ..ReadOptions::for_preset(p)
    };
    let (ds, report) = read_standard(&dir, &opts).expect("read");
    assert_eq!(report.zeroed_non_finite, 0);
    let s = ds.summary();
    assert_eq!((s.videos, s.frames, s.dim), (5, 3350, 64));
    assert_eq!(s.activities.get("coffee"), Some(&5));
    assert_eq!(s.mapping_classes, 48);
    // SIL, pour_milk, pour_coffee, take_cup, pour_sugar
    assert_eq!(s.classes_present, vec![0, 2, 5, 6, 9]);
    let expected = [
        ("P03_cam01_P03_coffee", 917, 52, 4),
        ("P05_cam01_P05_coffee", 1119, 4, 4),
        ("P06_cam01_P06_coffee", 472, 4, 4),
        ("P08_webcam01_P08_coffee", 271, 4, 4),
        ("P09_cam01_P09_coffee", 571, 4, 4),
    ];
    let got: Vec<(&str, usize, usize, usize)> = s
        .per_video
        .iter()
        .map(|(n, f, z, l)| (n.as_str(), *f, *z, *l))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(s.zero_rows, 68);
    // first non-zero value of P05 row 5 matches the text file exactly (f64 → f32 like numpy)
    let text =
        std::fs::read_to_string(dir.join("features/coffee/P05_cam01_P05_coffee.txt")).expect("txt");
    let row4: Vec<f32> = text
        .lines()
        .nth(4)
        .expect("line")
        .split_whitespace()
        .map(|t| t.parse::<f64>().expect("num") as f32)
        .collect();
    assert_eq!(ds.videos[1].features.row(4), row4.as_slice());
}

#[test]
fn breakfast_round_trip_through_parquet_is_bit_exact() {
    let Some(dir) = breakfast() else { return };
    let opts = ReadOptions::for_preset(preset("breakfast").expect("preset"));
    let (ds, _) = read_standard(&dir, &opts).expect("read");
    let tmp = tempfile::tempdir().expect("tmp");
    for c in [
        ParquetCompression::Snappy,
        ParquetCompression::Zstd,
        ParquetCompression::None,
    ] {
        let path = tmp.path().join("coffee.parquet");
        write_parquet(&ds, &path, c).expect("write");
        let back = read_parquet(&path, &[], &[]).expect("read back");
        assert_eq!(back.dim, ds.dim);
        assert_eq!(back.mapping, ds.mapping);
        assert_eq!(back.videos.len(), ds.videos.len());
        for (a, b) in ds.videos.iter().zip(&back.videos) {
            let bits = |v: &clot_datasets::Video| {
                v.features
                    .as_slice()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(a), bits(b), "{}", a.name);
            assert_eq!(a, b);
        }
    }
}
