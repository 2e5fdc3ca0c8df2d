//! Sundial's integration tests, one binary: in-process servers and real `sundial` processes,
//! driven by the raw generated gRPC client acting as both client and worker.
//!
//! Helpers live in the `sundial_tests` library (`tests/src/`).

mod cluster;
mod config_file;
mod database_restarts;
mod durability;
mod errors;
mod history_members;
mod lifecycle;
mod metrics;
mod paging;
mod queries;
mod range_checks;
mod retention;
mod signals;
mod stores;
mod traces;
