//! The Docker backend: every mock OpenStack and agent is a real container
//! of the locally built image; by default they all share one network
//! namespace of the run (no per-pair kernel neighbour entries), their API
//! ports published on 127.0.0.1 only ([`NetLayout`]). Containers and the network are
//! removed on shutdown, on drop (failure, panic) and on Ctrl-C/SIGTERM
//! ([`cleanup`]). See docs/testbeds.md.

pub mod cleanup;
pub mod images;
pub mod testbed;

pub use images::{build_image, docker_available, static_build, ImageError};
pub use testbed::{DockerTestbed, NetLayout};
