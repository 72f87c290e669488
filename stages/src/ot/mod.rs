//! Optimal transport: the ASOT solver used by OT1, OT2 and OT3, and the cost terms.
//!
//! * [`asot`]: fused KOT + temporal Gromov-Wasserstein, KL-relaxed action marginal, entropic
//!   projected mirror descent (SPEC §3), batched over videos.
//! * [`cost`]: the cosine cost 1 − F Aᵀ, the temporal prior ρ·|i/N − k/K| and the sliced
//!   Wasserstein cost (SPEC §2).

pub mod asot;
pub mod cost;
pub mod simd;

pub use asot::{AsotParams, OtError, StepSize, objective, solve, solve_batch};
pub mod stage;
