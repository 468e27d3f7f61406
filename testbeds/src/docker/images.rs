//! The project's container image, built locally: there is no registry to
//! pull from, so the image is `FROM scratch` with the project's own static
//! binaries (`mock-openstack`, `p2p-agent`, and `loadgen` for the load
//! generator of an exported Swarm or Kubernetes testbed).

use std::path::{Path, PathBuf};
use std::process::Command;

use testcontainers::runners::AsyncBuilder;
use testcontainers::GenericBuildableImage;

pub const IMAGE_NAME: &str = "p2pstack-node";
pub const IMAGE_TAG: &str = "local";

/// The Rust target of the static build (glibc, statically linked).
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Binaries the image carries.
pub const BINARIES: [&str; 3] = ["mock-openstack", "p2p-agent", "loadgen"];

const DOCKERFILE: &str = "FROM scratch\n\
COPY mock-openstack /mock-openstack\n\
COPY p2p-agent /p2p-agent\n\
COPY loadgen /loadgen\n\
USER 65534:65534\n";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot run cargo: {0}")]
    Cargo(std::io::Error),
    #[error("the static build failed (exit {0:?}); see cargo's output above")]
    BuildFailed(Option<i32>),
    #[error("the static build did not produce {0}")]
    Missing(PathBuf),
    #[error("docker image build failed: {0}")]
    Docker(String),
}

/// The repository root, where `cargo build` must run.
pub fn default_source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds static release binaries into `<source>/target/static` (a target
/// directory of its own, so that it does not invalidate normal builds).
pub fn static_build(source: &Path) -> Result<PathBuf, ImageError> {
    let target_dir = source.join("target").join("static");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(source)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &target_dir)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            STATIC_TARGET,
            "-p",
            "mock-openstack",
            "-p",
            "agent",
            "-p",
            "loadgen",
        ])
        .status()
        .map_err(ImageError::Cargo)?;
    if !status.success() {
        return Err(ImageError::BuildFailed(status.code()));
    }
    let bin_dir = target_dir.join(STATIC_TARGET).join("release");
    for b in BINARIES {
        let p = bin_dir.join(b);
        if !p.is_file() {
            return Err(ImageError::Missing(p));
        }
    }
    Ok(bin_dir)
}

/// Builds the image `p2pstack-node:local` from binaries in `bin_dir`.
pub async fn build_image(bin_dir: &Path) -> Result<String, ImageError> {
    let mut image =
        GenericBuildableImage::new(IMAGE_NAME, IMAGE_TAG).with_dockerfile_string(DOCKERFILE);
    for b in BINARIES {
        image = image.with_file(bin_dir.join(b), b);
    }
    let _built = image
        .build_image()
        .await
        .map_err(|e| ImageError::Docker(e.to_string()))?;
    Ok(format!("{IMAGE_NAME}:{IMAGE_TAG}"))
}

/// True when a Docker engine socket is reachable from here.
pub fn docker_available() -> bool {
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        if let Some(path) = host.strip_prefix("unix://") {
            return Path::new(path).exists();
        }
        return !host.is_empty();
    }
    Path::new("/var/run/docker.sock").exists()
}
