//! The raw kernel boundary: the few system calls that neither `nix` nor `rustix` wrap
//! (clone3 with a pidfd, mount_setattr, close_range, pidfd signalling with real-time
//! signals, TIOCGPTPEER), each behind a small safe function.
//!
//! Everything here is a thin wrapper: policy (which flags, which order) lives in the
//! callers, so these files stay auditable at a glance. Every `unsafe` block says why it
//! is sound. One file per kernel area; callers use the flat `sys::NAME` paths
//! re-exported here.

mod fd;
mod mount;
mod netif;
mod process;
mod procfs;
mod signal;
mod thread;
mod tty;

pub use fd::{cloexec_from, close_all_but, dup_onto, set_nonblocking, stdio};
pub use mount::{
    MOUNT_ATTR_IDMAP, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, mount_setattr,
    open_path_nofollow, openat2, unshare_private_mounts,
};
pub use netif::{link_up, loopback_up, rename_link, set_mac};
pub use process::{
    Forked, clone3, clone3_for, drop_bounding, execve, exit_now, join_container, kill, pidfd_open, pidfd_send_signal,
    set_non_dumpable, with_fsids,
};
pub use procfs::{boot_id, live_start_time, process_start_time, random_hex128};
pub use signal::{reset_signals, signalfd};
pub use thread::{Error, ThreadCounter, fork_single, require_single_thread};
pub use tty::{fd_is_tty, get_winsize, pty_peer, set_controlling_tty, set_winsize, unlock_pty};

mod nftables;
mod stamp;
pub use nftables::nft_table_handle;
pub use stamp::{SharedStamps, boottime_us};
