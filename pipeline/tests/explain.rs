//! `clot explain` for each graph of SPEC §4: the stages present, in phase order, and what they
//! read, so the ablations differ exactly as the paper's: without SWD only OT1's cost changes;
//! without dispatching the dispatch stage goes; without the decoder decode, OT2 and its loss go
//! and refinement attends over A; without refinement refine, OT3 and its loss go and the
//! prediction comes from T.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, ok};

/// (phase, stage, text of the stage's three lines) in printed order (the table ends at the
/// first blank line; what follows says where the graph runs on wgpu).
fn stages(args: &[&str]) -> Vec<(String, String, String)> {
    let mut full = vec!["explain"];
    full.extend_from_slice(args);
    let text = ok(&full);
    let mut out: Vec<(String, String, String)> = Vec::new();
    for line in text.lines().skip(2) {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with(' ') {
            if let Some(last) = out.last_mut() {
                last.2.push_str(line);
            }
            continue;
        }
        let mut it = line.split_whitespace();
        if let (Some(phase), Some(stage)) = (it.next(), it.next()) {
            out.push((phase.to_string(), stage.to_string(), line.to_string()));
        }
    }
    out
}

fn names(s: &[(String, String, String)]) -> Vec<&str> {
    s.iter().map(|(_, n, _)| n.as_str()).collect()
}

fn text_of<'a>(s: &'a [(String, String, String)], stage: &str) -> &'a str {
    &s.iter().find(|(_, n, _)| n == stage).unwrap().2
}

const CLOT: &[&str] = &[
    "load",
    "actions",
    "encode",
    "dispatch",
    "ot1",
    "decode",
    "ot2",
    "refine",
    "ot3",
    "loss",
    "loss-segments",
    "loss-refined",
    "adam",
    "predict",
];

#[test]
fn clot_has_every_stage_in_phase_order() {
    let s = stages(&["--mode", "clot"]);
    assert_eq!(names(&s), CLOT);
    assert!(text_of(&s, "ot1").contains("C_swd"));
    assert!(text_of(&s, "refine").contains("SegmentEmbeddings"));
    assert!(text_of(&s, "predict").contains("RefinedPlan"));
    assert_eq!(stages(&[]), s, "clot is the default mode");
}

#[test]
fn asot_is_encode_ot1_loss() {
    let s = stages(&["--mode", "asot"]);
    assert_eq!(
        names(&s),
        [
            "load", "actions", "encode", "ot1", "loss", "adam", "predict"
        ]
    );
    assert!(!text_of(&s, "ot1").contains("C_swd"));
    assert!(text_of(&s, "predict").contains("TransportPlan"));
}

#[test]
fn without_swd_changes_only_the_ot1_cost() {
    let full = stages(&[]);
    let s = stages(&["--without", "swd"]);
    assert_eq!(names(&s), CLOT);
    assert!(!text_of(&s, "ot1").contains("C_swd"));
    for (a, b) in full.iter().zip(&s) {
        if a.1 != "ot1" {
            assert_eq!(a, b, "{} must not change", a.1);
        }
    }
}

#[test]
fn without_dispatch_removes_only_dispatch() {
    let s = stages(&["--without", "dispatch"]);
    let want: Vec<&str> = CLOT.iter().copied().filter(|n| *n != "dispatch").collect();
    assert_eq!(names(&s), want);
    assert!(text_of(&s, "ot1").contains("C_swd"));
}

#[test]
fn without_decoder_refines_over_the_actions() {
    let s = stages(&["--without", "decoder"]);
    let want: Vec<&str> = CLOT
        .iter()
        .copied()
        .filter(|n| !["decode", "ot2", "loss-segments"].contains(n))
        .collect();
    assert_eq!(names(&s), want);
    let r = text_of(&s, "refine");
    assert!(
        r.contains("Params(clusters)") && !r.contains("SegmentEmbeddings"),
        "{r}"
    );
    assert!(text_of(&s, "predict").contains("RefinedPlan"));
}

#[test]
fn without_refine_predicts_from_t() {
    let s = stages(&["--without", "refine"]);
    let want: Vec<&str> = CLOT
        .iter()
        .copied()
        .filter(|n| !["refine", "ot3", "loss-refined"].contains(n))
        .collect();
    assert_eq!(names(&s), want);
    assert!(text_of(&s, "predict").contains("TransportPlan"));
}

#[test]
fn ablations_combine_and_unknown_ones_fail() {
    let s = stages(&["--without", "decoder,refine"]);
    let want: Vec<&str> = CLOT
        .iter()
        .copied()
        .filter(|n| {
            ![
                "decode",
                "ot2",
                "loss-segments",
                "refine",
                "ot3",
                "loss-refined",
            ]
            .contains(n)
        })
        .collect();
    assert_eq!(names(&s), want);
    let err = fails(&["explain", "--without", "decoding"]);
    assert!(
        err.contains("decoding") && err.contains("swd, dispatch, decoder, refine"),
        "{err}"
    );
    let err = fails(&["explain", "--mode", "asot", "--without", "swd"]);
    assert!(err.contains("swd"), "{err}");
}

/// With the GPU kernels built, `explain` says that the graph trains with a resident step on wgpu.
#[test]
fn explain_says_where_the_graph_runs_on_wgpu() {
    for mode in ["clot", "asot"] {
        let text = ok(&["explain", "--mode", mode]);
        let said = text.contains("on wgpu: a resident training step");
        assert_eq!(said, clot_stages::gpu::WGPU_BUILT, "{mode}: {text}");
    }
}
