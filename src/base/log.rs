//! Logs, kept apart from the messages for people. What a user is told (results,
//! notices, `hutch: error:` and `hint:`) is printed by the CLI itself; logs are for
//! finding out why, and go through `tracing` at a level set by `--log-level` or
//! `HUTCH_LOG` (`error`, `warn`, `info`, `debug`, `trace`, or `off`).
//!
//! * The CLI logs to stderr, `hutch: LEVEL: message`, from `warn` up by default.
//! * The monitor logs to `logs/monitor.log` (its stderr), each line stamped with the
//!   wall-clock time in milliseconds and the level, from `info` up by default. The CLI
//!   hands its own `--log-level` on to the monitor it spawns, through `HUTCH_LOG`.

use std::fmt;
use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The environment variable that sets the level (the flag wins over it).
pub const ENV: &str = "HUTCH_LOG";

/// A log level as the user writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level(pub LevelFilter);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("failed to read the log level {given:?}: it is one of off, error, warn, info, debug, trace")]
pub struct LevelError {
    pub given: String,
}

impl FromStr for Level {
    type Err = LevelError;
    fn from_str(s: &str) -> Result<Level, LevelError> {
        let filter = match s.trim().to_ascii_lowercase().as_str() {
            "off" => LevelFilter::OFF,
            "error" => LevelFilter::ERROR,
            "warn" | "warning" => LevelFilter::WARN,
            "info" => LevelFilter::INFO,
            "debug" => LevelFilter::DEBUG,
            "trace" => LevelFilter::TRACE,
            _ => return Err(LevelError { given: s.into() }),
        };
        Ok(Level(filter))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.0 {
            LevelFilter::OFF => "off",
            LevelFilter::ERROR => "error",
            LevelFilter::WARN => "warn",
            LevelFilter::INFO => "info",
            LevelFilter::DEBUG => "debug",
            _ => "trace",
        };
        f.write_str(s)
    }
}

/// Who is logging: the two processes format their lines differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Cli,
    Monitor,
}

impl Sink {
    fn default_level(self) -> Level {
        match self {
            Sink::Cli => Level(LevelFilter::WARN),
            Sink::Monitor => Level(LevelFilter::INFO),
        }
    }
}

/// The level in force: the flag, else `HUTCH_LOG`, else the sink's default. A
/// `HUTCH_LOG` that does not parse is ignored with a warning on stderr rather than
/// stopping the command (it may be set for a newer hutch).
pub fn resolve(flag: Option<Level>, env: Option<&str>, sink: Sink) -> (Level, Option<LevelError>) {
    if let Some(level) = flag {
        return (level, None);
    }
    match env.map(str::parse::<Level>) {
        Some(Ok(level)) => (level, None),
        Some(Err(e)) => (sink.default_level(), Some(e)),
        None => (sink.default_level(), None),
    }
}

/// The level the user asked for (flag or `HUTCH_LOG`), if any: what a spawned monitor
/// is handed, so `hutch --log-level debug start` makes a talkative monitor too.
static ASKED: std::sync::OnceLock<Level> = std::sync::OnceLock::new();

pub fn asked() -> Option<Level> {
    ASKED.get().copied()
}

/// Installs the process's subscriber. Called once, first thing in `main`.
pub fn init(flag: Option<Level>, sink: Sink) -> Level {
    let env = std::env::var(ENV).ok();
    let (level, bad) = resolve(flag, env.as_deref(), sink);
    if flag.is_some() || (env.is_some() && bad.is_none()) {
        let _ = ASKED.set(level);
    }
    let builder = tracing_subscriber::fmt()
        .with_max_level(level.0)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let _ = match sink {
        Sink::Cli => builder.without_time().event_format(CliFormat).try_init(),
        Sink::Monitor => builder.with_timer(UnixMillis).try_init(),
    };
    if let Some(e) = bad {
        tracing::warn!("{e} (from {ENV}); using {level}");
    }
    level
}

/// `[1764633600.123]`: the wall clock in seconds and milliseconds, as the monitor's log
/// always had, so lines line up with the console log and `hutch info` times.
struct UnixMillis;

impl FormatTime for UnixMillis {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let ms = crate::base::fsutil::now_ms();
        write!(w, "[{}.{:03}]", ms / 1000, ms % 1000)
    }
}

/// `hutch: warn: message`: the CLI's log lines read like its other diagnostics.
struct CliFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for CliFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        write!(w, "hutch: {level}: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip() {
        for s in ["off", "error", "warn", "info", "debug", "trace"] {
            assert_eq!(s.parse::<Level>().unwrap().to_string(), s);
        }
        assert_eq!("WARNING".parse::<Level>().unwrap(), Level(LevelFilter::WARN));
        assert_eq!("loud".parse::<Level>(), Err(LevelError { given: "loud".into() }));
    }

    #[test]
    fn the_flag_wins_then_the_environment_then_the_default() {
        let debug = Some(Level(LevelFilter::DEBUG));
        assert_eq!(resolve(debug, Some("error"), Sink::Cli).0, Level(LevelFilter::DEBUG));
        assert_eq!(resolve(None, Some("error"), Sink::Cli).0, Level(LevelFilter::ERROR));
        assert_eq!(resolve(None, None, Sink::Cli).0, Level(LevelFilter::WARN));
        assert_eq!(resolve(None, None, Sink::Monitor).0, Level(LevelFilter::INFO));
        let (level, bad) = resolve(None, Some("loud"), Sink::Monitor);
        assert_eq!(level, Level(LevelFilter::INFO));
        assert!(bad.unwrap().to_string().contains("\"loud\""));
    }
}
