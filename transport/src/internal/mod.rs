//! The internal API between roles (`sundial.internal.v1`): the history and matching services
//! of one process, served to the others ([`server`]) and called from them ([`client`]), with the
//! shard's requests and replies carried one for one ([`codec`]) and errors carried typed
//! ([`errors`]).

pub mod client;
mod codec;
pub mod errors;
pub mod server;

pub use client::{Peer, RemoteHistory, RemoteMatching};
pub use server::{HistoryServer, MatchingServer};
