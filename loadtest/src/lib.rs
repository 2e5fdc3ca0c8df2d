//! `sundial-loadtest`: the load generator and scripted worker for benchmarks and
//! shard-contention experiments, against Sundial or any server that speaks Temporal's public
//! gRPC API (for instance the reference `temporal server start-dev`).
//!
//! It talks the raw API through `sundial_proto`'s generated client: a client that starts
//! (and signals) workflows, and a worker whose workflow logic is a script that reads the
//! history in each workflow task (no SDK, no replay), so the harness stays cheap and the
//! server is what gets measured. Must not depend on Sundial's server crates: it measures
//! them from the outside.
//!
//! - [`scenario`]: the load shapes and the scripted workflow;
//! - [`driver`]: one run (pacing, counting, draining) with [`worker`] and [`tracker`];
//! - [`report`]: figures, tables and the JSON report; [`chart`]: SVG charts;
//! - [`server`]: server processes this tool starts; [`compare`] and [`shards`]: the modes
//!   that start them; [`metrics`]: Sundial's per-shard commit metrics.

pub mod chart;
pub mod client;
pub mod compare;
pub mod cpu;
pub mod driver;
pub mod metrics;
pub mod report;
pub mod scenario;
pub mod server;
pub mod shards;
pub mod tracker;
pub mod worker;
