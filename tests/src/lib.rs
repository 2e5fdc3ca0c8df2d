//! `sundial-tests`: shared helpers for Sundial's integration tests (`tests/main.rs`).
//!
//! Holds what the tests need to talk to a server the way a Temporal worker would, with nothing
//! but the generated gRPC client: an in-process server bound to `127.0.0.1:0` ([`server`]), a
//! real `sundial` process that can be killed with `SIGKILL` and restarted ([`process`]), a
//! raw-client worker with command builders ([`worker`]), the sample configs edited for a test
//! ([`sample`]), private PostgreSQL and MariaDB servers ([`databases`]) and network
//! faults ([`netfault`]). Every wait is
//! bounded, so a broken server fails a test instead of hanging it, and every process started
//! is killed on drop.
//!
//! Test-only: nothing here is part of the server.

pub mod databases;
pub mod members;
pub mod netfault;
pub mod process;
pub mod sample;
pub mod scrape;
pub mod server;
pub mod worker;

pub use server::{Client, TestServer, connect, health};
pub use worker::Worker;
