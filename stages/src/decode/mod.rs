//! The decode stage (placeholder module header; the stage is added below).
pub mod kernel;
