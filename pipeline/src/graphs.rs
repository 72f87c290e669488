//! Stage graphs: each mode is a list of stages added to a [`StageGraph`] (SPEC §4). A user graph
//! is the same call with more stages: `graph.add_stage(MyStage)`.
//!
//! * `asot`: load → actions → encode → ot1 → loss → predict, with Adam in the Step schedule.

use clot_stages::actions::ActionsStage;
use clot_stages::encode::EncodeStage;
use clot_stages::graph::StageGraph;
use clot_stages::load::LoadStage;
use clot_stages::loss::LossStage;
use clot_stages::optim::AdamStage;
use clot_stages::ot::stage::Solve1Stage;
use clot_stages::predict::PredictStage;

/// The modes `--mode` accepts.
pub const MODES: &[&str] = &["asot"];

/// The stage graph of `mode` (stages only; resources are added by the driver).
pub fn build(mode: &str) -> Option<StageGraph> {
    let mut g = StageGraph::new();
    match mode {
        "asot" => {
            g.add_stage(LoadStage)
                .add_stage(ActionsStage)
                .add_stage(EncodeStage)
                .add_stage(Solve1Stage)
                .add_stage(LossStage)
                .add_stage(PredictStage)
                .add_stage(AdamStage);
        }
        _ => return None,
    }
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_builds_without_ambiguity() {
        for mode in MODES {
            let mut g = build(mode).unwrap();
            g.strict();
            g.initialize().unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
    }

    #[test]
    fn asot_explain_lists_its_stages_in_phase_order() {
        let g = build("asot").unwrap();
        let text = g.explain();
        let pos = |s: &str| {
            text.find(s)
                .unwrap_or_else(|| panic!("{s} missing:\n{text}"))
        };
        assert!(pos("load") < pos("encode"));
        assert!(pos("encode") < pos("ot1"));
        assert!(pos("ot1") < pos("loss"));
        assert!(pos("loss") < pos("adam"));
        assert!(pos("adam") < pos("predict"));
        for absent in ["dispatch", "decode", "refine", "ot2", "ot3"] {
            assert!(!text.contains(absent), "asot has no {absent}");
        }
    }
}
