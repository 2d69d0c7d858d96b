//! Signal names and numbers, as a table. Inits disagree on what "halt" means
//! (systemd: SIGRTMIN+3, busybox init: SIGUSR1, sysvinit: SIGPWR), so configs name
//! signals and this module turns names into numbers, including real-time ones.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// glibc's SIGRTMIN: the kernel's 32 plus the two that glibc reserves for itself. Inits
/// built against glibc (systemd) count "SIGRTMIN+3" from here.
pub const SIGRTMIN: i32 = 34;
/// The kernel's highest signal.
pub const SIGRTMAX: i32 = 64;

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown signal {0:?}: use a name such as SIGTERM, TERM, SIGPWR or SIGRTMIN+3, or a number from 1 to 64")]
pub struct SignalError(pub String);

/// Parses `SIGTERM`, `TERM`, `sigterm`, `15`, `SIGRTMIN+3`, `RTMIN+3` or `SIGRTMAX-2`.
pub fn parse(text: &str) -> Result<i32, SignalError> {
    let err = || SignalError(text.to_string());
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&n) { Ok(n) } else { Err(err()) };
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        let off = offset(rest).ok_or_else(err)?;
        let n = SIGRTMIN + off;
        return if (SIGRTMIN..=SIGRTMAX).contains(&n) { Ok(n) } else { Err(err()) };
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        let off = offset(rest).ok_or_else(err)?;
        let n = SIGRTMAX + off;
        return if (SIGRTMIN..=SIGRTMAX).contains(&n) { Ok(n) } else { Err(err()) };
    }
    NAMES.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v).ok_or_else(err)
}

fn offset(rest: &str) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    let (sign, digits) = rest.split_at(1);
    let n: i32 = digits.parse().ok()?;
    match sign {
        "+" => Some(n),
        "-" => Some(-n),
        _ => None,
    }
}

/// A signal as a config file names it, parsed when the file is loaded: the text is kept
/// as written (so the file reads back unchanged) beside its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Signal {
    text: String,
    number: i32,
}

impl Signal {
    /// The signal number, real-time ones included.
    pub fn number(&self) -> i32 {
        self.number
    }

    /// The name as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Signal {
    type Err = SignalError;
    fn from_str(text: &str) -> Result<Signal, SignalError> {
        Ok(Signal { number: parse(text)?, text: text.to_string() })
    }
}

impl TryFrom<String> for Signal {
    type Error = SignalError;
    fn try_from(text: String) -> Result<Signal, SignalError> {
        Ok(Signal { number: parse(&text)?, text })
    }
}

impl From<Signal> for String {
    fn from(s: Signal) -> String {
        s.text
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq<&str> for Signal {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

/// The conventional name of a signal number: `SIGTERM`, `SIGRTMIN+3`.
pub fn name(sig: i32) -> String {
    if let Some((n, _)) = NAMES.iter().find(|(_, v)| *v == sig) {
        return format!("SIG{n}");
    }
    if (SIGRTMIN..=SIGRTMAX).contains(&sig) {
        return match sig - SIGRTMIN {
            0 => "SIGRTMIN".to_string(),
            d => format!("SIGRTMIN+{d}"),
        };
    }
    format!("signal {sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_keeps_its_text_and_refuses_unknown_names() {
        let s: Signal = "RTMIN+3".parse().unwrap();
        assert_eq!((s.number(), s.as_str()), (37, "RTMIN+3"));
        assert_eq!(String::from(s), "RTMIN+3");
        assert_eq!("SIGNOPE".parse::<Signal>(), Err(SignalError("SIGNOPE".into())));
    }

    #[test]
    fn parses_the_forms_configs_use() {
        assert_eq!(parse("SIGTERM"), Ok(15));
        assert_eq!(parse("term"), Ok(15));
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("SIGPWR"), Ok(libc::SIGPWR));
        assert_eq!(parse("SIGUSR1"), Ok(10));
        assert_eq!(parse("SIGRTMIN+3"), Ok(37));
        assert_eq!(parse("RTMIN+4"), Ok(38));
        assert_eq!(parse("SIGRTMAX-1"), Ok(63));
        assert_eq!(parse("SIGRTMIN"), Ok(34));
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["", "0", "65", "-1", "SIGFOO", "RTMIN+40", "RTMIN*3", "SIGRTMIN+"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("SIGFOO").unwrap_err().to_string().contains("SIGRTMIN+3"));
    }

    #[test]
    fn names_round_trip() {
        for sig in 1..=SIGRTMAX {
            if sig == 32 || sig == 33 {
                continue; // reserved by glibc, no conventional name
            }
            assert_eq!(parse(&name(sig)), Ok(sig), "{}", name(sig));
        }
    }
}
