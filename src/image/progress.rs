//! Progress bars for downloads and unpacks: bytes, rate and ETA on a terminal,
//! nothing at all otherwise (logs and pipes stay clean).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A byte counter labelled `label`, out of `total` when it is known.
    pub fn bytes(label: &str, total: Option<u64>) -> Progress {
        let bar = if crate::sys::fd_is_tty(crate::sys::stdio(2)) {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let style = match total {
                Some(_) => "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                None => "{msg:24} {bytes} {bytes_per_sec}",
            };
            bar.set_style(ProgressStyle::with_template(style).expect("valid template").progress_chars("=> "));
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_message(label.to_string());
        Progress { bar }
    }

    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}
