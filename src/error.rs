//! Typed failures that decide the process exit code.
//!
//! 0: success. 1: a check ran and failed (parity mismatch, verify failure).
//! 2: bad usage, bad input, or any other error.

/// A failure the user can act on; its message names the file, field or flag.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad usage or input (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// A check ran and found a difference (exit 1).
    #[error("{0}")]
    CheckFailed(String),
}

/// Shorthand for `Err(Failure::BadInput(..))` as an anyhow error.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    Failure::BadInput(message.into()).into()
}

/// The exit code for an error chain.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    match err.chain().find_map(|e| e.downcast_ref::<Failure>()) {
        Some(Failure::CheckFailed(_)) => 1,
        _ => 2,
    }
}
