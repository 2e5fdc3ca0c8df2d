//! Unit tests of the engine: a test driver that builds histories with a fake clock
//! ([`driver::Driver`]) and named canned scenarios asserting whole event sequences
//! (STYLE.md 6; reference §2.3–2.4).

mod driver;

mod durations;

mod activity;
mod lifecycle;
mod limits;
mod replay;
mod reset;
mod timer;
mod tokens;
mod update;
mod workflow_task;
