//! The internal API between roles (`sundial.internal.v1`): the history and matching services
//! of one process, served to the others ([`server`]) and called from them ([`client`]), with the
//! shard's requests and replies carried one for one ([`codec`]), errors carried typed
//! ([`errors`]) and the caller's trace carried on ([`tracing`]).

pub mod client;
mod codec;
pub mod errors;
pub mod server;

pub use client::{Peer, RemoteHistory, RemoteMatching};
pub use server::{HistoryServer, MatchingServer};
pub mod tracing;
