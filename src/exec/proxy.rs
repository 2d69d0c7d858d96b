//! The host side of `exec` and `console`: relaying the user's terminal (raw mode,
//! window size, SIGWINCH) or forwarding signals, and collecting the exit status.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;

use super::{HelperMsg, reap};
use crate::base::term::{Escape, RawMode};
use crate::monitor::console::{FRAME_DATA, FRAME_RESIZE, frame};
use crate::monitor::proto::{self, Request};
use crate::runtime::channel;
use crate::runtime::wire::{Kind, WireError};
use crate::sys;

fn stdin() -> BorrowedFd<'static> {
    sys::stdio(0)
}

fn write_all_stdout(data: &[u8]) {
    let _ = write_all_fd(sys::stdio(1), data);
}

/// Three close-on-exec pipes for a command without a pty: the container's ends
/// (stdin read, stdout write, stderr write) and ours (stdin write, stdout read, stderr
/// read, non-blocking).
pub fn pipes() -> std::io::Result<([OwnedFd; 3], [OwnedFd; 3])> {
    let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    for fd in [&in_w, &out_r, &err_r] {
        sys::set_nonblocking(fd)?;
    }
    Ok(([in_r, out_w, err_w], [in_w, out_r, err_r]))
}

/// Writes all of `data` to one of our stdio fds, waiting when it is full; false when
/// the reader has gone.
fn write_all_fd(fd: BorrowedFd<'static>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                let _ = poll(&mut [PollFd::new(fd, PollFlags::POLLOUT)], PollTimeout::NONE);
            }
            Err(_) => return false,
        }
    }
    true
}

/// Copies what `fd` has (non-blocking, a bounded amount) to our stdio fd `target`;
/// false once `fd` has reached its end, or `target` is gone (closing `fd` then tells
/// the command, which gets EPIPE as it would writing to a closed pipe directly).
fn drain_to(fd: &OwnedFd, target: u8, buf: &mut [u8]) -> bool {
    for _ in 0..16 {
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) | Err(rustix::io::Errno::IO) => return false,
            Ok(n) => {
                if !write_all_fd(sys::stdio(target), &buf[..n]) {
                    return false;
                }
            }
            Err(rustix::io::Errno::AGAIN) => return true,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// The relay between the user's stdio and the command's, and everything the CLI
/// learns from the exec helper.
struct Relay {
    /// The command's pty master (read and write), when it has a terminal.
    master: Option<OwnedFd>,
    /// The write end of the command's stdin pipe, when it has no terminal.
    stdin_pipe: Option<OwnedFd>,
    /// Read ends of the command's stdout and stderr pipes, with our fd each goes to.
    outputs: Vec<(OwnedFd, u8)>,
    /// Input read from the user, not yet accepted by the command.
    pending: Vec<u8>,
    stdin_open: bool,
    /// A pidfd of the command, to forward signals to.
    target: Option<OwnedFd>,
    raw: Option<RawMode>,
    /// The helper's failure, before the command ran.
    failed: Option<WireError>,
    /// Why the command could not be executed (it exits with its own status).
    not_run: Vec<WireError>,
}

impl Relay {
    /// Where the user's input goes.
    fn input(&self) -> Option<&OwnedFd> {
        self.master.as_ref().or(self.stdin_pipe.as_ref())
    }

    /// Writes as much pending input as the command takes now.
    fn flush_input(&mut self) {
        while !self.pending.is_empty() {
            let Some(fd) = self.input() else {
                self.pending.clear();
                return;
            };
            match rustix::io::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(rustix::io::Errno::AGAIN) => return,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    // The command closed its stdin: stop reading ours.
                    self.pending.clear();
                    self.stdin_pipe = None;
                    self.stdin_open = false;
                    return;
                }
            }
        }
        if !self.stdin_open {
            // End of the user's input: the command sees end-of-file on its pipe.
            self.stdin_pipe = None;
        }
    }

    fn on_message(&mut self, data: &[u8], fd: Option<OwnedFd>) {
        match HelperMsg::parse(data) {
            Some(HelperMsg::Master) => {
                if let Some(m) = fd {
                    if sys::fd_is_tty(stdin()) {
                        if let Ok((r, c)) = sys::get_winsize(stdin()) {
                            let _ = sys::set_winsize(m.as_fd(), r, c);
                        }
                        self.raw = RawMode::enable(stdin()).ok();
                    }
                    let _ = sys::set_nonblocking(&m);
                    self.master = Some(m);
                }
            }
            Some(HelperMsg::Pid) => self.target = fd,
            Some(HelperMsg::Failed { error }) => self.failed = Some(error),
            Some(HelperMsg::NotRun { error, .. }) => self.not_run.push(error),
            None => {
                self.failed = Some(WireError::new(Kind::Exec, "the exec helper sent a message this hutch cannot read"))
            }
        }
    }
}

/// Where each fd of one poll round is in the poll set.
struct Polled {
    sock: Option<usize>,
    master: Option<usize>,
    outputs: Vec<usize>,
    stdin: Option<usize>,
    input: Option<usize>,
}

impl Relay {
    /// The fds to poll this round: signals first, then what is open.
    fn poll_set<'a>(&'a self, signals: &'a SignalFd, sock: Option<&'a OwnedFd>) -> (Vec<PollFd<'a>>, Polled) {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let mut add = |fd: BorrowedFd<'a>, flags: PollFlags| {
            fds.push(PollFd::new(fd, flags));
            fds.len() - 1
        };
        let sock = sock.map(|s| add(s.as_fd(), PollFlags::POLLIN));
        let master = self.master.as_ref().map(|m| add(m.as_fd(), PollFlags::POLLIN));
        let outputs = self.outputs.iter().map(|(fd, _)| add(fd.as_fd(), PollFlags::POLLIN)).collect();
        let wants_input = self.stdin_open && self.pending.is_empty() && self.input().is_some();
        let stdin = wants_input.then(|| add(stdin(), PollFlags::POLLIN));
        let input = match (self.pending.is_empty(), self.input()) {
            (false, Some(fd)) => Some(add(fd.as_fd(), PollFlags::POLLOUT)),
            _ => None,
        };
        (fds, Polled { sock, master, outputs, stdin, input })
    }

    /// SIGCHLD reaps, SIGWINCH resizes, the rest goes to the command.
    fn on_signals(&mut self, signals: &SignalFd, c1: Pid, exit_code: &mut Option<i32>) {
        while let Ok(Some(info)) = signals.read_signal() {
            match info.ssi_signo as i32 {
                libc::SIGCHLD => {
                    if exit_code.is_none() {
                        *exit_code = reap(c1);
                    }
                }
                libc::SIGWINCH => {
                    if let (Some(m), Ok((r, c))) = (&self.master, sys::get_winsize(stdin())) {
                        let _ = sys::set_winsize(m.as_fd(), r, c);
                    }
                }
                sig => {
                    if let Some(t) = &self.target {
                        let _ = sys::pidfd_send_signal(t.as_fd(), sig);
                    }
                }
            }
        }
    }

    fn on_stdin(&mut self, buf: &mut [u8]) {
        match nix::unistd::read(stdin(), buf) {
            Ok(0) | Err(_) => self.stdin_open = false,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
        }
        self.flush_input();
    }

    /// Copies the command's output that is ready; forgets outputs that have ended.
    fn drain(&mut self, master_ready: bool, outputs_ready: &[bool], buf: &mut [u8]) {
        if master_ready && self.master.as_ref().is_some_and(|m| !drain_to(m, 1, buf)) {
            self.master = None;
        }
        for (i, r) in outputs_ready.iter().enumerate().rev() {
            if *r && !drain_to(&self.outputs[i].0, self.outputs[i].1, buf) {
                self.outputs.remove(i);
            }
        }
    }
}

/// Waits for the first exec child `c1`, relaying the terminal (a pty master comes
/// over `sock`) or the `pipes` from `pipes()`, and forwarding signals. Returns the
/// command's exit status, or the helper's failure.
pub fn supervise(c1: Pid, sock: OwnedFd, signals: SignalFd, pipes: Option<[OwnedFd; 3]>) -> Result<i32, WireError> {
    let mut relay = Relay {
        master: None,
        stdin_pipe: None,
        outputs: Vec::new(),
        pending: Vec::new(),
        stdin_open: true,
        target: None,
        raw: None,
        failed: None,
        not_run: Vec::new(),
    };
    if let Some([stdin_w, stdout_r, stderr_r]) = pipes {
        relay.stdin_pipe = Some(stdin_w);
        relay.outputs = vec![(stdout_r, 1), (stderr_r, 2)];
    }
    let mut sock_open = true;
    let mut exit_code: Option<i32> = None;
    let mut buf = vec![0u8; 16 * 1024];

    loop {
        let outputs_open = relay.master.is_some() || !relay.outputs.is_empty();
        if exit_code.is_some() && !sock_open && !outputs_open {
            break;
        }
        let (mut fds, at) = relay.poll_set(&signals, sock_open.then_some(&sock));
        // Once the command has exited, only drain what is already there.
        let timeout = if exit_code.is_some() { PollTimeout::from(100u8) } else { PollTimeout::NONE };
        let n = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(WireError::new(Kind::Exec, format!("failed to poll: {e}"))),
        };
        if n == 0 && exit_code.is_some() {
            break;
        }
        let ready = |i: Option<usize>| i.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty()));
        let (sig_r, sock_r, master_r, stdin_r, input_r) =
            (ready(Some(0)), ready(at.sock), ready(at.master), ready(at.stdin), ready(at.input));
        let outs_r: Vec<bool> = at.outputs.iter().map(|i| ready(Some(*i))).collect();
        drop(fds);

        if sig_r {
            relay.on_signals(&signals, c1, &mut exit_code);
        }
        if sock_r {
            match channel::recv(sock.as_fd()) {
                Ok(Some((data, fd))) => relay.on_message(&data, fd),
                Ok(None) | Err(_) => sock_open = false,
            }
        }
        if stdin_r {
            relay.on_stdin(&mut buf);
        } else if input_r {
            relay.flush_input();
        }
        relay.drain(master_r, &outs_r, &mut buf);
        if exit_code.is_none() {
            exit_code = reap(c1);
        }
    }
    finish(relay, exit_code, c1)
}

/// Restores the terminal, waits for the helper if it has not been reaped, and says
/// how the exec ended.
fn finish(mut relay: Relay, exit_code: Option<i32>, c1: Pid) -> Result<i32, WireError> {
    drop(relay.raw.take());
    let code = match exit_code {
        Some(c) => c,
        None => loop {
            if let Some(c) = reap(c1) {
                break c;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        },
    };
    if let Some(e) = relay.failed {
        return Err(e);
    }
    for e in &relay.not_run {
        eprintln!("hutch: {e}");
    }
    Ok(code)
}

/// `hutch console`: attaches the terminal to the container's console through its
/// monitor until Ctrl-a q, or until the container stops.
pub fn console(socket: &std::path::Path, name: &str) -> Result<(), super::Error> {
    let console_err = |source: proto::Error| super::Error::Console { name: name.into(), source };
    let tty = sys::fd_is_tty(stdin());
    let (rows, cols) = if tty { sys::get_winsize(stdin()).unwrap_or((0, 0)) } else { (0, 0) };
    let (resp, reader) = proto::request(socket, &Request::Console { rows, cols }).map_err(console_err)?;
    if let Some(refused) = resp.refusal() {
        return Err(console_err(refused));
    }
    // Output that arrived with the response line is already in the reader's buffer.
    let early = reader.buffer().to_vec();
    let mut stream: UnixStream = reader.into_inner();

    let signals =
        sys::signalfd(&[Signal::SIGWINCH]).map_err(|source| super::Error::Sys { name: name.into(), source })?;

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
            Err(e) => return Err(super::Error::Failed { name: name.into(), message: format!("failed to poll: {e}") }),
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
