//! Infrastructure every layer above uses and that knows nothing of containers'
//! semantics: where files live, locks, the runtime state record, names, sizes,
//! signals, output formats, the user's terminal, atomic file writes and host settings.

pub mod fsutil;
pub mod lock;
pub mod log;
pub mod name;
pub mod output;
pub mod paths;
pub mod settings;
pub mod signal;
pub mod size;
pub mod state;
pub mod term;
