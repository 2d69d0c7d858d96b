//! The host side of `exec` and `console`: relaying the user's terminal (raw mode,
//! window size, SIGWINCH) or forwarding signals, and collecting the exit status.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use super::{MSG_ERROR, MSG_MASTER, MSG_PID, reap};
use crate::monitor::console::{FRAME_DATA, FRAME_RESIZE, frame};
use crate::monitor::proto::{self, Request};
use crate::runtime::channel;
use crate::sys;
use crate::term::{Escape, RawMode};

fn stdin() -> BorrowedFd<'static> {
    sys::borrow_raw(0)
}

fn write_all_stdout(data: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(data);
    let _ = out.flush();
}

/// Waits for the first exec child `c1`, relaying the terminal when a pty comes over
/// `sock`, forwarding signals otherwise. Returns the command's exit status.
pub fn supervise(c1: Pid, sock: OwnedFd, signals: SignalFd, _tty: bool) -> Result<i32, String> {
    let mut master: Option<OwnedFd> = None;
    let mut target: Option<i32> = None;
    let mut errors: Vec<String> = Vec::new();
    let mut sock_open = true;
    let mut stdin_open = true;
    let mut master_open = false;
    let mut raw: Option<RawMode> = None;
    let mut exit_code: Option<i32> = None;
    let mut buf = vec![0u8; 16 * 1024];

    loop {
        if exit_code.is_some() && !sock_open && !master_open {
            break;
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let sock_i = sock_open.then(|| {
            fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let master_i = match (&master, master_open) {
            (Some(m), true) => {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        let stdin_i = (master_open && stdin_open).then(|| {
            fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
            fds.len() - 1
        });
        // Once the command has exited, only drain what is already there.
        let timeout = if exit_code.is_some() { PollTimeout::from(50u8) } else { PollTimeout::NONE };
        let n = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll failed: {e}")),
        };
        if n == 0 && exit_code.is_some() {
            break;
        }
        let ready = |i: Option<usize>| i.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty()));
        let (sig_r, sock_r, master_r, stdin_r) = (ready(Some(0)), ready(sock_i), ready(master_i), ready(stdin_i));
        drop(fds);

        if sig_r {
            while let Ok(Some(info)) = signals.read_signal() {
                match info.ssi_signo as i32 {
                    libc::SIGCHLD => {
                        if exit_code.is_none() {
                            exit_code = reap(c1);
                        }
                    }
                    libc::SIGWINCH => {
                        if let Some(m) = &master {
                            if let Ok((r, c)) = sys::get_winsize(stdin()) {
                                let _ = sys::set_winsize(m.as_fd(), r, c);
                            }
                        }
                    }
                    sig => {
                        if let Some(pid) = target {
                            let _ = sys::kill(pid, sig);
                        }
                    }
                }
            }
        }
        if sock_r {
            match channel::recv(sock.as_fd()) {
                Ok(Some((data, fd))) => match data.first() {
                    Some(&MSG_MASTER) => {
                        if let Some(m) = fd {
                            if sys::fd_is_tty(stdin()) {
                                if let Ok((r, c)) = sys::get_winsize(stdin()) {
                                    let _ = sys::set_winsize(m.as_fd(), r, c);
                                }
                                raw = RawMode::enable(stdin()).ok();
                            }
                            master = Some(m);
                            master_open = true;
                        }
                    }
                    Some(&MSG_PID) if data.len() == 5 => {
                        target = Some(i32::from_le_bytes([data[1], data[2], data[3], data[4]]));
                    }
                    Some(&MSG_ERROR) => errors.push(String::from_utf8_lossy(&data[1..]).into_owned()),
                    _ => {}
                },
                Ok(None) | Err(_) => sock_open = false,
            }
        }
        if stdin_r {
            match nix::unistd::read(stdin(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if let Some(m) = &master {
                        let mut rest = &buf[..n];
                        while !rest.is_empty() {
                            match rustix::io::write(m, rest) {
                                Ok(w) => rest = &rest[w..],
                                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
        }
        if master_r {
            if let Some(m) = &master {
                match rustix::io::read(m, &mut buf) {
                    Ok(0) | Err(rustix::io::Errno::IO) => master_open = false,
                    Ok(n) => write_all_stdout(&buf[..n]),
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    Err(_) => master_open = false,
                }
            }
        }
        if exit_code.is_none() {
            exit_code = reap(c1);
        }
    }
    drop(raw);
    let code = match exit_code {
        Some(c) => c,
        None => loop {
            if let Some(c) = reap(c1) {
                break c;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        },
    };
    if !errors.is_empty() {
        let msg = errors.join("; ");
        if code == 125 {
            return Err(msg);
        }
        eprintln!("hutch: {msg}");
    }
    Ok(code)
}

/// `hutch console`: attaches the terminal to the container's console through its
/// monitor until Ctrl-a q, or until the container stops.
pub fn console(socket: &std::path::Path, name: &str) -> Result<(), String> {
    let tty = sys::fd_is_tty(stdin());
    let (rows, cols) = if tty { sys::get_winsize(stdin()).unwrap_or((0, 0)) } else { (0, 0) };
    let (resp, reader) = proto::request(socket, &Request::Console { rows, cols })
        .map_err(|e| format!("failed to reach the monitor of {name}: {e}"))?;
    if !resp.ok {
        return Err(resp.error.unwrap_or_else(|| "the monitor refused the console".into()));
    }
    // Output that arrived with the response line is already in the reader's buffer.
    let early = reader.buffer().to_vec();
    let mut stream: UnixStream = reader.into_inner();

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGWINCH);
    mask.thread_block().map_err(|e| format!("failed to block SIGWINCH: {e}"))?;
    let signals =
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(|e| e.to_string())?;

    eprint!("Connected to the console of {name}. Type Ctrl-a q to detach.\r\n");
    let raw = if tty { RawMode::enable(stdin()).ok() } else { None };
    write_all_stdout(&early);
    let mut escape = Escape::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdin_open = true;
    let mut ended = false;
    loop {
        let mut fds =
            vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN), PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll failed: {e}")),
        }
        let ready = |i: usize| fds.get(i).is_some_and(|f| f.revents().is_some_and(|r| !r.is_empty()));
        let (sig_r, stream_r, stdin_r) = (ready(0), ready(1), ready(2));
        drop(fds);
        if sig_r {
            while let Ok(Some(_)) = signals.read_signal() {}
            if let Ok((r, c)) = sys::get_winsize(stdin()) {
                let mut payload = r.to_be_bytes().to_vec();
                payload.extend_from_slice(&c.to_be_bytes());
                let _ = stream.write_all(&frame(FRAME_RESIZE, &payload));
            }
        }
        if stream_r {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    ended = true;
                    break;
                }
                Ok(n) => write_all_stdout(&buf[..n]),
            }
        }
        if stdin_r {
            match nix::unistd::read(stdin(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let (data, detach) = escape.filter(&buf[..n]);
                    if !data.is_empty() && stream.write_all(&frame(FRAME_DATA, &data)).is_err() {
                        ended = true;
                        break;
                    }
                    if detach {
                        break;
                    }
                }
            }
        }
    }
    drop(raw);
    if ended {
        eprint!("\r\nThe console of {name} closed (the container stopped).\r\n");
    } else {
        eprint!("\r\nDetached from {name}.\r\n");
    }
    Ok(())
}
