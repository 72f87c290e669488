//! The run's pictures: `segments.{png,svg}` and `curve.{png,svg}` exist, hold their words as text
//! (the SVG) and as ink (the PNG). `cargo test -p clot-pipeline --test plot -- --ignored` also
//! writes previews to `/tmp/plots` (or `$CLOT_PLOT_DIR`) to look at.

mod common;

use std::path::{Path, PathBuf};

use clot_pipeline::plot::{SegmentsPlot, curve, segments};
use clot_pipeline::train::{CurvePoint, VideoResult};
use common::svg_texts;

const CLASSES: [&str; 8] = [
    "background",
    "SIL",
    "take_cup",
    "pour_coffee",
    "pour_milk",
    "spoon_sugar",
    "stir_coffee",
    "add_milk",
];

/// Ground-truth id (−1..=6) → name.
fn class_name(id: i32) -> Option<String> {
    CLASSES.get((id + 1) as usize).map(|s| (*s).to_owned())
}

/// Deterministic pseudo-random numbers.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// A video of `frames` frames through `steps` (class ids) in order, with a prediction that
/// follows it through `cluster_of` with boundaries shifted and a few spurious runs of `noise`.
fn video(
    name: &str,
    frames: usize,
    steps: &[i32],
    cluster_of: &dyn Fn(i32) -> i32,
    noise: i32,
    labelled: bool,
    seed: u64,
) -> VideoResult {
    let mut rng = Lcg(seed);
    let mut gt = Vec::with_capacity(frames);
    for (i, &s) in steps.iter().enumerate() {
        let end = frames * (i + 1) / steps.len();
        gt.resize(end, s);
    }
    let mut prediction: Vec<i32> = (0..frames)
        .map(|f| {
            let shifted = (f + frames / 40).min(frames - 1);
            cluster_of(gt[shifted])
        })
        .collect();
    for _ in 0..3 {
        let at = rng.next() as usize % frames;
        let len = 5 + rng.next() as usize % (frames / 15).max(1);
        for p in prediction.iter_mut().skip(at).take(len) {
            *p = noise;
        }
    }
    VideoResult {
        name: name.to_owned(),
        activity: "coffee".to_owned(),
        confidence: vec![0.5; frames],
        prediction,
        ground_truth: labelled.then_some(gt),
        ot_objective: None,
    }
}

/// Clusters 0..=7 ↔ classes −1..=6, shuffled; the noise cluster 8 is unmatched.
fn cluster_of(class: i32) -> i32 {
    (class + 1 + 3) % 8
}
fn matched(cluster: i32) -> Option<i32> {
    (0..8).contains(&cluster).then(|| (cluster + 5) % 8 - 1)
}

fn labelled_videos() -> Vec<VideoResult> {
    vec![
        video(
            "P03_cam01_P03_coffee",
            812,
            &[0, 1, 2, 3, -1, 5, 0],
            &cluster_of,
            8,
            true,
            1,
        ),
        video(
            "P04_webcam02_P04_coffee",
            1534,
            &[0, 1, 3, 2, 6, 5, 0],
            &cluster_of,
            8,
            true,
            2,
        ),
        video(
            "P12_stereo01_P12_coffee",
            433,
            &[0, 1, 2, 4, 5, 0],
            &cluster_of,
            3,
            true,
            3,
        ),
        video(
            "P15_cam02_P15_coffee_with_a_very_long_name_that_needs_shortening",
            2048,
            &[0, 2, 3, 4, 5, 6, 0],
            &cluster_of,
            8,
            true,
            4,
        ),
    ]
}

fn unlabelled_videos() -> Vec<VideoResult> {
    (0..3)
        .map(|i| {
            video(
                &format!("unlabelled_{i}"),
                300 + 200 * i,
                &[0, 1, 2, 3, 4],
                &|c| c,
                5,
                false,
                10 + i as u64,
            )
        })
        .collect()
}

fn curve_points(segments: bool, refined: bool, epochs: usize) -> Vec<CurvePoint> {
    let mut out = Vec::new();
    let mut step = 0;
    for epoch in 0..epochs {
        for batch in 0..8 {
            let t = step as f64;
            let frames = 2.0 * (-t / 60.0).exp() + 0.4 + 0.05 * ((t * 1.7).sin());
            let seg = segments.then(|| 1.5 * (-t / 40.0).exp() + 0.3);
            let refn = refined.then(|| 1.8 * (-t / 50.0).exp() + 0.35);
            out.push(CurvePoint {
                epoch,
                batch,
                step,
                loss: frames + seg.unwrap_or(0.0) + refn.unwrap_or(0.0),
                loss_frames: frames,
                loss_segments: seg,
                loss_refined: refn,
                val_mof: (batch == 7).then(|| 0.3 + 0.4 * (1.0 - (-(epoch as f64) / 4.0).exp())),
            });
            step += 1;
        }
    }
    out
}

#[track_caller]
fn assert_texts(path: &Path, words: &[&str]) {
    let texts = svg_texts(path);
    for word in words {
        assert!(
            texts.iter().any(|t| t == word),
            "{word:?} is no text of {}: {texts:?}",
            path.display()
        );
    }
}

#[track_caller]
fn assert_no_text(path: &Path, part: &str) {
    let texts = svg_texts(path);
    assert!(
        !texts.iter().any(|t| t.contains(part)),
        "{part:?} in a text of {}",
        path.display()
    );
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len()
}

/// Pixels darker than grey 100 in rows `ys` of the PNG.
fn dark_pixels(path: &Path, ys: std::ops::Range<u32>) -> usize {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    ys.flat_map(|y| (0..img.width()).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = img.get_pixel(x, y);
            p.0.iter().map(|&c| c as u32).sum::<u32>() < 3 * 100
        })
        .count()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    names.sort();
    names
}

fn write_labelled(dir: &Path) -> PathBuf {
    let results = labelled_videos();
    let path = dir.join("segments.png");
    segments(
        &path,
        &SegmentsPlot {
            title: "Breakfast / coffee · mode clot · seed 0".into(),
            subtitle: Some(
                "activity MoF 0.456 · F1 0.452 · mIoU 0.330 (Hungarian matching)".into(),
            ),
            results: &results,
            class_name: &class_name,
            matched: Some(&matched),
            max_videos: 8,
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    path
}

#[test]
fn segments_writes_png_and_svg_with_the_words() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let png = write_labelled(dir.path());
    // both pictures, no temporary files left behind
    assert_eq!(files(dir.path()), ["segments.png", "segments.svg"]);
    assert!(size(&png) > 10_000, "png of {} bytes", size(&png));
    let svg = dir.path().join("segments.svg");
    assert!(size(&svg) > 10_000);
    assert_texts(
        &svg,
        &[
            "Breakfast / coffee · mode clot · seed 0",
            "activity MoF 0.456 · F1 0.452 · mIoU 0.330 (Hungarian matching)",
            "P03_cam01_P03_coffee",
            "P04_webcam02_P04_coffee",
            "P12_stereo01_P12_coffee",
            "812 frames",
            "1\u{2009}534 frames",
            "ground truth",
            "prediction",
            "ground-truth classes",
            "cluster 0 → spoon_sugar",
            "cluster 3 → background",
            "cluster 8 (unmatched)",
        ],
    );
    assert_texts(&svg, &CLASSES);
    // a name too long for its column is shortened in the middle
    let texts = svg_texts(&svg);
    assert!(
        texts.iter().any(|t| t.starts_with("P15_cam02_P15_c")
            && t.contains('…')
            && t.ends_with("shortening")),
        "{texts:?}"
    );
}

#[test]
fn segments_png_has_ink_in_the_title_rows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let png = write_labelled(dir.path());
    let img = image::open(&png).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(img.width(), 1200);
    // the title's glyphs: dark pixels in its band, none in the blank rows above it
    assert!(dark_pixels(&png, 14..44) > 500, "no title ink");
    assert_eq!(dark_pixels(&png, 0..8), 0);
}

#[test]
fn segments_draws_unlabelled_videos_with_cluster_colours() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let results = unlabelled_videos();
    let png = dir.path().join("segments.png");
    segments(
        &png,
        &SegmentsPlot {
            title: "unlabelled".into(),
            subtitle: None,
            results: &results,
            class_name: &|_| None,
            matched: None,
            max_videos: 2,
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let svg = dir.path().join("segments.svg");
    assert_texts(
        &svg,
        &[
            "unlabelled",
            "unlabelled_0",
            "unlabelled_1",
            "prediction",
            "predicted clusters",
            "cluster 0",
            "cluster 5",
        ],
    );
    assert_no_text(&svg, "unlabelled_2"); // max_videos
    assert_no_text(&svg, "ground truth");
    assert_no_text(&svg, "ground-truth");
    assert_no_text(&svg, "unmatched");
    assert!(dark_pixels(&png, 14..44) > 100);
}

#[test]
fn segments_legend_wraps_fifty_classes_into_columns() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let steps: Vec<i32> = (-1..49).collect();
    let results = vec![video("many", 5000, &steps, &|c| c + 1, 60, true, 7)];
    let png = dir.path().join("segments.png");
    segments(
        &png,
        &SegmentsPlot {
            title: "fifty classes".into(),
            subtitle: None,
            results: &results,
            class_name: &|c| Some(format!("action_number_{c}")),
            matched: Some(&|p| (p < 50).then_some(p - 1)),
            max_videos: 8,
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let svg = dir.path().join("segments.svg");
    let names: Vec<String> = (-1..49).map(|c| format!("action_number_{c}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_texts(&svg, &names);
    assert_texts(
        &svg,
        &["cluster 60 (unmatched)", "cluster 49 → action_number_48"],
    );
    let img = image::open(&png).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(img.width(), 1200);
    // ~100 legend entries in columns: far fewer rows than entries
    assert!(img.height() < 1000, "height {}", img.height());
}

#[test]
fn segments_without_videos_says_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let png = dir.path().join("segments.png");
    segments(
        &png,
        &SegmentsPlot {
            title: "empty".into(),
            subtitle: None,
            results: &[],
            class_name: &|_| None,
            matched: None,
            max_videos: 8,
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_texts(
        &dir.path().join("segments.svg"),
        &["empty", "no videos to show"],
    );
    assert!(dark_pixels(&png, 14..44) > 50);
}

#[test]
fn an_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap_or_else(|e| panic!("{e}"));
    let png = blocker.join("segments.png");
    let err = curve(&png, "t", &curve_points(false, false, 1))
        .err()
        .unwrap_or_else(|| panic!("writing under a file succeeded"));
    assert!(
        format!("{err:#}").contains(&png.display().to_string()),
        "{err:#}"
    );
}

#[test]
fn curve_writes_losses_and_validation_mof() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let png = dir.path().join("curve.png");
    curve(
        &png,
        "Breakfast / coffee · mode clot · seed 0",
        &curve_points(true, true, 12),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(files(dir.path()), ["curve.png", "curve.svg"]);
    assert!(size(&png) > 10_000);
    let svg = dir.path().join("curve.svg");
    assert_texts(
        &svg,
        &[
            "Breakfast / coffee · mode clot · seed 0",
            "step",
            "cross-entropy",
            "total",
            "frames CE(T, P)",
            "segments CE(T_S, P_S)",
            "refined CE(T_R, P_R)",
            "validation MoF",
            "validation MoF per epoch (last 0.674, best 0.674 at epoch 11)",
        ],
    );
    assert!(dark_pixels(&png, 14..44) > 500);
}

#[test]
fn curve_of_asot_merges_total_and_frames_and_skips_absent_terms() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let png = dir.path().join("curve.png");
    let mut points = curve_points(false, false, 3);
    for p in &mut points {
        p.val_mof = None;
    }
    curve(&png, "asot", &points).unwrap_or_else(|e| panic!("{e:#}"));
    let svg = dir.path().join("curve.svg");
    assert_texts(&svg, &["total = frames CE(T, P)", "step", "cross-entropy"]);
    assert_no_text(&svg, "segments CE");
    assert_no_text(&svg, "refined CE");
    assert_no_text(&svg, "validation MoF");
}

#[test]
fn curve_without_steps_says_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let png = dir.path().join("curve.png");
    curve(&png, "nothing trained", &[]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_texts(
        &dir.path().join("curve.svg"),
        &["nothing trained", "no training steps"],
    );
    assert!(dark_pixels(&png, 14..44) > 100);
}

/// Writes every picture to `/tmp/plots` (or `$CLOT_PLOT_DIR`) to look at.
#[test]
#[ignore = "writes previews outside a tempdir"]
fn previews() {
    let dir = std::env::var_os("CLOT_PLOT_DIR")
        .map_or_else(|| PathBuf::from("/tmp/plots"), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let labelled = labelled_videos();
    let unlabelled = unlabelled_videos();
    let mixed: Vec<VideoResult> = labelled
        .iter()
        .take(2)
        .chain(&unlabelled)
        .cloned()
        .collect();
    let steps: Vec<i32> = (-1..49).collect();
    let many = vec![
        video("many_a", 5000, &steps, &|c| c + 1, 60, true, 7),
        video("many_b", 3000, &steps[10..], &|c| c + 1, 55, true, 8),
    ];
    let run = |name: &str, results: &[VideoResult], labels: bool, scored: bool| {
        let many_names = |c: i32| Some(format!("action_number_{c}"));
        segments(
            &dir.join(format!("{name}.png")),
            &SegmentsPlot {
                title: format!("{name} · mode clot · seed 0"),
                subtitle: scored.then(|| {
                    "activity MoF 0.456 · F1 0.452 · mIoU 0.330 (Hungarian matching)".into()
                }),
                results,
                class_name: if labels { &class_name } else { &many_names },
                matched: scored.then_some(if labels {
                    &matched as &dyn Fn(i32) -> Option<i32>
                } else {
                    &|p: i32| (p < 50).then_some(p - 1)
                }),
                max_videos: 8,
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    };
    run("segments_labelled", &labelled, true, true);
    run("segments_unlabelled", &unlabelled, true, false);
    run("segments_mixed", &mixed, true, true);
    run("segments_fifty", &many, false, true);
    run("segments_empty", &[], true, false);
    curve(
        &dir.join("curve_clot.png"),
        "Breakfast / coffee · mode clot · seed 0",
        &curve_points(true, true, 12),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let mut asot = curve_points(false, false, 30);
    for p in asot.iter_mut().filter(|p| p.epoch % 5 != 4) {
        p.val_mof = None;
    }
    curve(
        &dir.join("curve_asot.png"),
        "demo · mode asot · seed 0",
        &asot,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    curve(&dir.join("curve_empty.png"), "nothing trained", &[]).unwrap_or_else(|e| panic!("{e:#}"));
}
