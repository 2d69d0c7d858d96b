//! The user's terminal: raw mode (restored on drop), window-size tracking, and the
//! detach key of `hutch console` (Ctrl-a q, as in LXC and Incus).

use std::os::fd::BorrowedFd;

use nix::sys::termios::{self, SetArg, Termios};

/// Puts a terminal in raw mode; the original settings come back on drop.
pub struct RawMode {
    fd: BorrowedFd<'static>,
    original: Termios,
}

impl RawMode {
    pub fn enable(fd: BorrowedFd<'static>) -> std::io::Result<RawMode> {
        let original = termios::tcgetattr(fd)?;
        let mut raw = original.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { fd, original })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.original);
    }
}

/// What a keystroke stream means once the detach prefix is interpreted.
#[derive(Debug, Default)]
pub struct Escape {
    pending: bool,
}

pub const ESCAPE_KEY: u8 = 0x01; // Ctrl-a

impl Escape {
    /// Filters `input`: returns the bytes to send and whether the user asked to
    /// detach. Ctrl-a Ctrl-a sends one Ctrl-a; Ctrl-a followed by anything else sends
    /// both bytes.
    pub fn filter(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.pending {
                self.pending = false;
                match b {
                    b'q' | b'Q' => return (out, true),
                    ESCAPE_KEY => out.push(ESCAPE_KEY),
                    other => {
                        out.push(ESCAPE_KEY);
                        out.push(other);
                    }
                }
            } else if b == ESCAPE_KEY {
                self.pending = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_a_q_detaches_and_ctrl_a_ctrl_a_passes_through() {
        let mut e = Escape::default();
        assert_eq!(e.filter(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(e.filter(&[ESCAPE_KEY]), (vec![], false));
        assert_eq!(e.filter(b"q"), (vec![], true));
        let mut e = Escape::default();
        assert_eq!(e.filter(&[b'a', ESCAPE_KEY, ESCAPE_KEY, b'b']), (vec![b'a', ESCAPE_KEY, b'b'], false));
        assert_eq!(e.filter(&[ESCAPE_KEY, b'x']), (vec![ESCAPE_KEY, b'x'], false));
    }
}
