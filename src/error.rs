//! The top-level error: every module's error, plus the few the CLI raises itself.
//! Messages read "failed to <verb> <object>: <cause>"; `hint` adds what to do.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Container(#[from] crate::container::Error),
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    Exec(#[from] crate::exec::Error),
    #[error(transparent)]
    Files(#[from] crate::files::Error),
    #[error(transparent)]
    Name(#[from] crate::base::name::NameError),
    #[error(transparent)]
    Signal(#[from] crate::base::signal::SignalError),
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    /// Writing data on stdout failed; a closed pipe among these ends the command quietly.
    #[error("failed to write the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("failed to {action}: {message}")]
    Cli { action: String, message: String, hint: Option<String> },
}

impl Error {
    pub fn cli(action: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Cli { action: action.into(), message: message.into(), hint: None }
    }

    pub fn with_hint(action: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Cli { action: action.into(), message: message.into(), hint: Some(hint.into()) }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Container(e) => e.hint(),
            Error::Config(e) => e.hint(),
            Error::Exec(e) => e.hint(),
            Error::Files(e) => e.hint(),
            Error::Image(e) => e.hint(),
            Error::Network(e) => e.hint(),
            Error::Cli { hint, .. } => hint.clone(),
            Error::Name(_) | Error::Signal(_) | Error::Output(_) => None,
        }
    }
}

/// Prints an error the way every hutch command does.
/// `hutch: error: failed to ...` then, where there is one, `hint: ...`, on stderr (a
/// closed stderr is ignored: there is nowhere left to say it).
pub fn report(e: &Error) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "hutch: error: {e}");
    if let Some(h) = e.hint() {
        let _ = writeln!(err, "hint: {h}");
    }
}
