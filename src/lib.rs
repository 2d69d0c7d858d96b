//! hutch: a system-container manager. Whole distributions boot their own init as
//! PID 1 in user, pid, mount, UTS, IPC, network and cgroup namespaces, unprivileged by
//! default, each under a small monitor process (no daemon).
//!
//! The layers, top to bottom (a module uses only those below it, or beside it within
//! its layer):
//!
//! | layer | modules |
//! |---|---|
//! | command line | [`cli`]: arguments, dispatch, output for people and `--format json` |
//! | lifecycle | [`container`]: create, start, stop, destroy, observe, shared folders (`mounts`), dev boxes (`devbox`), each under the container's lock; [`files`]: push, pull, edit |
//! | supervision and the child side | [`monitor`] (the per-container supervisor), [`runtime`] (mount plan, shared folders' binds, pivot_root, exec of init), [`exec`] (joining a running container) |
//! | subsystems | [`cgroup`], [`systemd`], [`network`], [`rootfs`], [`storage`], [`image`], [`distro`], [`config`], [`idmap`] |
//! | infrastructure | [`base`]: paths, locks, state files, names, sizes, signals, output, terminal, files, settings |
//! | kernel boundary | [`sys`]: the raw system calls no crate wraps |
//!
//! [`error::Error`] gathers every module's error for the user, with its hint.

pub mod base;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod container;
pub mod distro;
pub mod error;
pub mod exec;
pub mod files;
pub mod idmap;
pub mod image;
pub mod monitor;
pub mod network;
pub mod rootfs;
pub mod runtime;
pub mod storage;
pub mod sys;
pub mod systemd;

pub use error::Error;
