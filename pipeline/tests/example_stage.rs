//! The example user stage (`examples/median_filter.rs`) added with one call: training is
//! unchanged, and the evaluation's labels are exactly the filtered labels of a run without it.

#![allow(clippy::unwrap_used)]

#[path = "../examples/median_filter.rs"]
mod example;

use clot_pipeline::config::TrainConfig;
use clot_pipeline::train::fit_with;
use example::{MedianFilter, filter_labels};

#[test]
fn the_median_filter_stage_runs_in_the_graph() {
    let (ds, _) = clot_datasets::open("demo", &clot_datasets::ReadOptions::default()).unwrap();
    let videos: Vec<_> = ds.videos.iter().take(6).collect();
    let mut cfg = TrainConfig::from_preset(clot_datasets::preset("demo").unwrap(), 7);
    cfg.epochs = 2;
    let bar = indicatif::ProgressBar::hidden();
    let (t0, plain, _) = fit_with(&cfg, &videos, &bar, |_| {}).unwrap();
    let mut stages = Vec::new();
    let (t1, filtered, _) = fit_with(&cfg, &videos, &bar, |g| {
        g.add_stage(MedianFilter { window: 201 });
        stages = g.stages().iter().map(|s| s.name).collect::<Vec<_>>();
    })
    .unwrap();
    assert_eq!(stages.last(), Some(&"median-filter"));
    assert_eq!(
        t0.params, t1.params,
        "a Write-phase stage must not change training"
    );
    let mut changed = 0;
    for (p, f) in plain.iter().zip(&filtered) {
        assert_eq!(filter_labels(&p.prediction, 201), f.prediction);
        changed += (p.prediction != f.prediction) as usize;
    }
    assert!(
        changed > 0,
        "the filter changed no video: the test would not notice it missing"
    );
}
