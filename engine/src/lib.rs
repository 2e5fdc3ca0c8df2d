//! `sundial-engine`: the pure workflow state machine.
//!
//! Owns mutable state, the history builder, command validation and handling, retries,
//! timeouts and the buffering rules of Temporal (see `shared/reference/temporal-semantics.md`
//! §2). A request is a plain function of (state, input, time): it changes the
//! [`MutableState`] and records new events and tasks in [`Changes`], which the caller persists
//! in one transaction before acting on them.
//!
//! Synchronous and deterministic: no I/O, no clock reads, no random ids (time and ids arrive in
//! [`Env`]). Must not depend on tokio, actix, tonic or any storage driver.

// Temporal still fills deprecated fields that SDKs read.
#![allow(deprecated)]

mod activity;
mod apply;
mod child;
mod commands;
pub mod cron;
mod error;
pub mod events;
mod limits;
mod reset;
pub mod retry;
pub mod search_attributes;
mod speculative;
pub mod state;
pub mod time;
mod timer;
pub mod update;
mod workflow;
mod workflow_retry;
mod workflow_task;

#[cfg(test)]
mod tests;

pub use commands::{CommandError, CompletionOutcome};
pub use error::Error;
pub use limits::Limits;
pub use reset::{RESET_IDENTITY, RESETTER_IDENTITY, Reapply, ResetParams};
pub use state::{
    ActivityInfo, ChildInfo, CurrentRunInfo, ExternalInfo, MutableState, TaskInfo, TaskKind,
    TaskToken,
};
pub use update::{AbortReason, UpdateRefusal, UpdateStatus};
pub use workflow::{Changes, Env, Signal, StartParams, Workflow};
pub use workflow_task::WorkflowTaskStart;

/// Result type of the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// Re-export of the message types the engine speaks.
pub use temporalio_protos::temporal::api;
