//! Images: templates say where a distribution comes from, the index and mirror
//! modules read image servers and apt sources, and the cache keeps each image once.

pub mod cache;
pub mod fetch;
pub mod index;
pub mod mirror;
pub mod pack;
pub mod progress;
pub mod template;

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
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoSuchImage { .. } => Some("see `hutch image list`".into()),
            Error::InUse { .. } => Some("destroy those containers first, or publish one as a new image".into()),
            Error::Fetch { .. } => Some("check the server URL (--server) and that this host can reach it".into()),
            _ => None,
        }
    }
}
