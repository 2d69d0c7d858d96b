//! hutch: a system-container manager. Whole distributions boot their own init as
//! PID 1 in user, pid, mount, UTS, IPC, network and cgroup namespaces, unprivileged by
//! default, each under a small monitor process (no daemon).
//!
//! Layout: `cli` parses and dispatches; `container` holds the lifecycle operations;
//! `monitor` is the per-container supervisor; `runtime` is the child side of a start
//! (mount plan, pivot_root, exec of init); `exec` joins a running container;
//! `cgroup`, `idmap`, `config`, `state` and `rootfs` each own one concern; `sys` is
//! the raw kernel boundary.

pub mod cgroup;
pub mod cli;
pub mod config;
pub mod container;
pub mod distro;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod idmap;
pub mod image;
pub mod lock;
pub mod monitor;
pub mod name;
pub mod network;
pub mod output;
pub mod paths;
pub mod rootfs;
pub mod runtime;
pub mod settings;
pub mod signal;
pub mod size;
pub mod state;
pub mod storage;
pub mod sys;
pub mod systemd;
pub mod term;

pub use error::Error;
