#[cfg(feature = "reusable-containers")]
pub use self::image::ReuseDirective;
pub use self::{
    build::{
        build_context::BuildContextBuilder, build_options::BuildImageOptions,
        buildable::BuildableImage,
    },
    containers::*,
    copy::{
        CopyDataSource, CopyFileFromContainer, CopyFromContainerError, CopyToContainer,
        CopyToContainerCollection, CopyToContainerError,
    },
    healthcheck::Healthcheck,
    image::{ContainerState, ExecCommand, Image, ImageExt},
    mounts::{AccessMode, Mount, MountTmpfsOptions, MountType},
    ports::{ContainerPort, IntoContainerPort},
    wait::{cmd_wait::CmdWaitFor, WaitFor},
};

mod image;

pub(crate) mod async_drop;
pub mod build;
pub mod client;
pub(crate) mod containers;
pub(crate) mod copy;
pub(crate) mod env;
pub mod error;
pub(crate) mod healthcheck;
pub mod logs;
pub(crate) mod mounts;
pub(crate) mod network;
pub mod ports;
pub mod wait;
