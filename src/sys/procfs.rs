//! Process identity from /proc (start times, zombies), the boot id and random ids.

use std::io;

/// Host view of a path's process-independent identity: (start time in clock ticks since
/// boot) of process `pid`, from field 22 of /proc/PID/stat.
pub fn process_start_time(pid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/PID/stat"))
}

/// Parses the start time out of a `/proc/PID/stat` line. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first token; start time is field 22.
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether a `/proc/PID/stat` line describes a process that has exited but was not
/// reaped yet (state Z or X).
pub fn parse_is_zombie(stat: &str) -> bool {
    let Some(i) = stat.rfind(')') else {
        return false;
    };
    matches!(stat[i + 1..].split_whitespace().next(), Some("Z" | "X"))
}

/// Start time of `pid` if it is running (not a zombie).
pub fn live_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    if parse_is_zombie(&stat) { None } else { parse_start_time(&stat) }
}

/// The host's boot id (changes at every reboot): how stale runtime state is recognised.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// A random 128-bit id as 32 hex digits, from the kernel's random pool.
pub fn random_hex128() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Fall back on something unique enough for a machine/boot id.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        buf.copy_from_slice(&(t ^ (std::process::id() as u128) << 64).to_le_bytes());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_parses_after_the_last_paren() {
        let stat = "4242 (we ird) cmd)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_start_time(stat), Some(987654));
    }

    #[test]
    fn zombies_are_recognised() {
        assert!(parse_is_zombie("42 (x) Z 1 42"));
        assert!(!parse_is_zombie("42 (Z) S 1 42"));
    }

    #[test]
    fn start_time_of_self_is_readable() {
        let t = process_start_time(std::process::id() as i32).unwrap();
        assert!(t > 0);
    }

    #[test]
    fn random_ids_differ() {
        let a = random_hex128();
        let b = random_hex128();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
