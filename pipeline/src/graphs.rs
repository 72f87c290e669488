//! Stage graphs: each mode and ablation is a list of stages added to a [`StageGraph`] (SPEC §4),
//! not a code branch. A user graph is the same call with one more stage:
//! `graph.add_stage(MyStage)`.
//!
//! * `clot`: load → actions → encode → dispatch → ot1 (+SWD) → decode → ot2 → refine (over S) →
//!   ot3 → loss, loss-segments, loss-refined → predict (from T_R); Adam in the Step schedule.
//! * `asot`: load → actions → encode → ot1 → loss → predict (from T).
//! * `clot` without `swd`: ot1 without the SWD term; without `dispatch`: no dispatch stage;
//!   without `decoder`: no decode, ot2 or loss-segments, refinement attends over A; without
//!   `refine`: no refine, ot3 or loss-refined, prediction from T. They combine.

use anyhow::{Result, bail};
use clot_stages::actions::ActionsStage;
use clot_stages::decode::DecodeStage;
use clot_stages::dispatch::DispatchStage;
use clot_stages::encode::EncodeStage;
use clot_stages::graph::StageGraph;
use clot_stages::load::LoadStage;
use clot_stages::loss::{Frames, LossStage, Refined, Segments};
use clot_stages::optim::AdamStage;
use clot_stages::ot::stage::{Solve1Stage, Solve2Stage, Solve3Stage};
use clot_stages::predict::PredictStage;
use clot_stages::refine::{Over, RefineStage};

/// The modes `--mode` accepts.
pub const MODES: &[&str] = &["clot", "asot"];

/// The stages `--without` can remove from the `clot` graph.
pub const ABLATIONS: &[&str] = &["swd", "dispatch", "decoder", "refine"];

/// Checks a mode and its ablations.
pub fn check(mode: &str, without: &[String]) -> Result<()> {
    if !MODES.contains(&mode) {
        bail!("unknown mode `{mode}` (known: {})", MODES.join(", "));
    }
    for w in without {
        if !ABLATIONS.contains(&w.as_str()) {
            bail!(
                "unknown ablation `{w}` in --without (known: {})",
                ABLATIONS.join(", ")
            );
        }
        if mode == "asot" {
            bail!(
                "--without {w} applies to the clot graph; the asot graph has none of those stages"
            );
        }
    }
    Ok(())
}

/// The stage graph of `mode` without the stages in `without` (stages only; the driver adds the
/// resources).
pub fn build(mode: &str, without: &[String]) -> Result<StageGraph> {
    check(mode, without)?;
    let has = |s: &str| mode == "clot" && !without.iter().any(|w| w == s);
    let mut g = StageGraph::new();
    g.add_stage(LoadStage)
        .add_stage(ActionsStage)
        .add_stage(EncodeStage)
        .add_stage(LossStage(Frames))
        .add_stage(AdamStage);
    g.add_stage(Solve1Stage { swd: has("swd") });
    if has("dispatch") {
        g.add_stage(DispatchStage);
    }
    let decoder = has("decoder");
    if decoder {
        g.add_stage(DecodeStage)
            .add_stage(Solve2Stage)
            .add_stage(LossStage(Segments));
    }
    let refine = has("refine");
    if refine {
        g.add_stage(RefineStage(if decoder {
            Over::Segments
        } else {
            Over::Actions
        }))
        .add_stage(Solve3Stage)
        .add_stage(LossStage(Refined));
    }
    g.add_stage(PredictStage { refined: refine });
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graphs() -> Vec<(String, Vec<String>)> {
        let mut v = vec![("asot".to_string(), vec![]), ("clot".to_string(), vec![])];
        for a in ABLATIONS {
            v.push(("clot".into(), vec![a.to_string()]));
        }
        v.push(("clot".into(), vec!["decoder".into(), "refine".into()]));
        v.push((
            "clot".into(),
            ABLATIONS.iter().map(|s| s.to_string()).collect(),
        ));
        v
    }

    #[test]
    fn every_graph_builds_without_ambiguity() {
        for (mode, without) in graphs() {
            let mut g = build(&mode, &without).unwrap();
            g.strict();
            g.initialize()
                .unwrap_or_else(|e| panic!("{mode} without {without:?}: {e}"));
        }
    }

    /// Every built-in graph runs a resident step on wgpu; a graph with a stage that has no GPU
    /// systems (a user's) does not.
    #[test]
    fn only_graphs_whose_every_stage_has_gpu_systems_run_resident() {
        struct HostOnly;
        impl clot_stages::graph::Stage for HostOnly {
            fn info(&self) -> clot_stages::graph::StageInfo {
                clot_stages::graph::StageInfo {
                    name: "host-only",
                    phase: clot_stages::graph::Phase::Write,
                    reads: &[],
                    writes: &[],
                    grad: clot_stages::graph::Grad::Detached,
                    about: "a user stage",
                }
            }
            fn build(&self, _: &mut StageGraph) {}
        }
        let built = clot_stages::gpu::WGPU_BUILT;
        for (mode, without) in graphs() {
            let resident = build(&mode, &without).unwrap().resident_on_gpu();
            assert_eq!(resident, built, "{mode} without {without:?}");
        }
        let mut g = build("asot", &[]).unwrap();
        g.add_stage(HostOnly);
        assert!(!g.resident_on_gpu());
        let text = g.explain();
        if built {
            assert!(
                text.contains("no resident training step: host-only has"),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_modes_and_ablations_are_errors() {
        assert!(build("nope", &[]).is_err());
        assert!(
            build("clot", &["decode".into()])
                .unwrap_err()
                .to_string()
                .contains("decode")
        );
        assert!(build("asot", &["swd".into()]).is_err());
    }
}
