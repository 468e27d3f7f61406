//! Concurrent-boot experiments against any OpenStack, with honest latency.
//!
//! - [`run_boot_burst`]: for each level, N boots at once; poll each until
//!   ACTIVE/ERROR/timeout; delete everything; wait until gone; audit.
//! - [`run_boot_delete`]: boot→delete cycles in a closed model (fixed
//!   concurrency) or an open model (arrivals fixed in advance, latency from
//!   the intended start, late and dropped starts counted).
//!
//! Every workflow is a tokio task (thousands on two cores); each entry point
//! authenticates once and shares its session; every HTTP call goes through
//! [`os_client::Transport`]. Results follow the [`results`] schema, durations
//! in model seconds.
//!
//! ```no_run
//! # async fn demo() -> Result<(), loadgen::LoadgenError> {
//! use std::sync::Arc;
//! use loadgen::{BurstConfig, CancellationToken, EntryPolicy, Target};
//!
//! let target = Target::password(
//!     vec!["http://127.0.0.1:8080/identity".into()],
//!     "admin", "secret", "admin",
//!     EntryPolicy::RoundRobin,
//! );
//! let (tx, _events) = tokio::sync::mpsc::unbounded_channel();
//! let cfg = BurstConfig { levels: vec![16, 32], events: Some(tx), ..BurstConfig::default() };
//! let transport: os_client::SharedTransport = Arc::new(
//!     os_client::ReqwestTransport::new(std::time::Duration::from_secs(60)).expect("client"),
//! );
//! let results = loadgen::run_boot_burst(&cfg, &target, transport, CancellationToken::new()).await?;
//! println!("{}", loadgen::summary_table(&results));
//! # Ok(()) }
//! ```

pub mod config;
pub mod durability;
pub mod error;
pub mod output;
pub mod prepare;
pub mod procstat;
pub mod runner;
pub mod stats;
pub mod target;
pub mod workflow;

pub use config::{
    BootDeleteConfig, BootDeleteModel, BurstConfig, EntryPolicy, EventSender, LevelEvent,
};
pub use error::LoadgenError;
pub use output::{summary_table, write_results_atomic};
pub use runner::{run_boot_burst, run_boot_delete};
pub use target::Target;

/// Re-exported so callers need not depend on tokio-util themselves.
pub use tokio_util::sync::CancellationToken;
