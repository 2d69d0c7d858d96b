//! Images: templates say where a distribution comes from, the index and mirror
//! modules read image servers and apt sources, and the cache keeps each image once.

pub(crate) mod build;
pub(crate) mod cache;
pub(crate) mod fetch;
pub(crate) mod index;
pub(crate) mod mirror;
pub(crate) mod obtain;
pub(crate) mod pack;
pub(crate) mod progress;
pub(crate) mod publish;
pub(crate) mod template;

use std::io;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("failed to read the image cache entry {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("failed to find image {what:?} in the cache")]
    NoSuchImage { what: String },
    #[error("failed to pick an image for {what:?}: several cached images match; give more of the id")]
    Ambiguous { what: String },
    #[error("failed to remove image {id}: containers stand on it ({containers})")]
    InUse { id: String, containers: String },
    #[error(transparent)]
    Template(#[from] template::Error),
    #[error(transparent)]
    Index(#[from] index::Error),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error("failed to get {image}: {message}")]
    NoSource { image: String, message: String },
    #[error("failed to find {image} on {server}: the index does not list it (it has: {available})")]
    NotInIndex { server: String, image: String, available: String },
    #[error("failed to verify {url}: {message}")]
    Checksum { url: String, message: String },
    #[error("failed to find {program}: it is not installed")]
    MissingProgram { program: String, package: String },
    #[error("failed to find a package mirror for {distro}: none given and none in the host's configuration")]
    NoMirror { distro: String },
    #[error("failed to use {alias:?} as an image alias: {message}")]
    BadAlias { alias: String, message: String },
    #[error("failed to use {alias:?} as an image alias: image {id} already has it")]
    AliasTaken { alias: String, id: String },
    #[error("{message}")]
    Settings { message: String },
    #[error("failed to use image {field} {value:?}: only 1-64 letters, digits and . _ : + - are allowed")]
    UnsafeField { field: &'static str, value: String },
    #[error("failed to build the image: {what}: {message}")]
    Build { what: String, message: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoSuchImage { .. } => Some("see `hutch image list`".into()),
            Error::InUse { .. } => Some("destroy those containers first, or publish one as a new image".into()),
            Error::Fetch { .. } => Some("check the server URL (--server) and that this host can reach it".into()),
            Error::Template(e) => e.hint(),
            Error::Index(e) => e.hint(),
            Error::Rootfs(e) => e.hint(),
            Error::Storage(e) => e.hint(),
            Error::MissingProgram { package, .. } => Some(format!("install the {package} package")),
            Error::NoMirror { distro } => Some(format!(
                "give one with --mirror URL, or set [mirrors] {distro} = \"URL\" in /etc/hutch/hutch.toml"
            )),
            Error::Checksum { .. } => {
                Some("nothing was cached; the download was corrupt or the server is wrong".into())
            }
            Error::NotInIndex { .. } => Some("pick a release the server has, or another --source".into()),
            _ => None,
        }
    }
}
