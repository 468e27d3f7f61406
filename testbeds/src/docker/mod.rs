//! The Docker backend: every mock OpenStack and agent is a real container
//! of the locally built image on a private Docker network, its API port
//! published on 127.0.0.1 only. Containers are removed when the testbed is
//! shut down or dropped (testcontainers removes them on drop), and the
//! network with the last of them.

pub mod images;
pub mod testbed;

pub use images::{build_image, docker_available, static_build, ImageError};
pub use testbed::DockerTestbed;
