//! The reference P2P agent: many cloudlets presented as one OpenStack.
//!
//! Pure domain logic (no I/O): [`placement`], [`idroute`], [`token`],
//! [`listing`], [`state`]. I/O: [`cloudlet`] (the own cloudlet, through
//! `os_client::Transport`), [`gossip`] (chitchat).

pub mod cloudlet;
pub mod config;
pub mod error;
pub mod gossip;
pub mod idroute;
pub mod listing;
pub mod placement;
pub mod state;
pub mod token;

pub use config::AgentConfig;
pub use error::{AgentError, CallError};
