//! `hutch-monitor`: the long-lived supervisor of one container, started by `hutch start`
//! (crate::container::lifecycle::spawn_monitor). A binary of its own so that it links
//! only the monitor's code, not the CLI's (argument parsing, images, archives, TLS).
fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::ExitCode::from(hutch::monitor::entry(&args))
}
