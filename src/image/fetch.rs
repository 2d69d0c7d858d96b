//! HTTP(S) downloads from image servers: small text files (indexes, checksums) and
//! archives streamed to disk through a SHA-256 hasher and a progress bar.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Error;
use super::progress::Progress;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        // A server that stops sending mid-body fails the pull instead of hanging it.
        .timeout_per_read(Some(Duration::from_secs(60)))
        // Archives are hashed exactly as served: no transparent decoding.
        .accept_encoding("identity")
        .user_agent(concat!("hutch/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

fn call(url: &str) -> Result<ureq::http::Response<ureq::Body>, Error> {
    agent().get(url).call().map_err(|e| Error::Fetch { url: url.to_string(), message: describe(&e) })
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// Whether a fetch error means "the server could not be reached at all" (so another
/// source may be tried), as opposed to a server that answered wrongly.
pub(crate) fn unreachable(e: &Error) -> bool {
    match e {
        // The server answered: with an error status, a short body or too much data.
        Error::Fetch { message, .. } => {
            !(message.starts_with("the server answered")
                || message.starts_with("the download broke off")
                || message.starts_with("it is larger than"))
        }
        _ => false,
    }
}

/// A small text file (an index or a checksum list), at most 16 MiB.
pub(crate) fn text(url: &str) -> Result<String, Error> {
    let mut resp = call(url)?;
    resp.body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()
        .map_err(|e| Error::Fetch { url: url.to_string(), message: describe(&e) })
}

/// Streams `url` into the new file `dest`; returns the SHA-256 of what was written, as
/// lowercase hex. The file is synced before returning; the caller removes it on error.
pub(crate) fn download(url: &str, dest: &Path, label: &str, max_bytes: u64) -> Result<String, Error> {
    let fail = |message: String| Error::Fetch { url: url.to_string(), message };
    let mut resp = call(url)?;
    let total = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut body = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(dest).map_err(|e| Error::Io {
        action: "create",
        path: dest.to_path_buf(),
        source: e,
    })?;
    let progress = Progress::bytes(label, total);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| fail(format!("the download broke off after {done} bytes: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::Io { action: "write", path: dest.to_path_buf(), source: e })?;
        done += n as u64;
        if done > max_bytes {
            return Err(fail(format!("it is larger than the {} MiB free for the image cache", max_bytes >> 20)));
        }
        progress.set(done);
    }
    if let Some(total) = total {
        if done != total {
            return Err(fail(format!("the download broke off after {done} of {total} bytes")));
        }
    }
    out.sync_all().map_err(|e| Error::Io { action: "sync", path: dest.to_path_buf(), source: e })?;
    progress.finish();
    Ok(super::index::hex(&hasher.finalize()))
}

/// SHA-256 of a file, as lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher)?;
    Ok(super::index::hex(&hasher.finalize()))
}
