//! Logging: `tracing` with structured fields (request ids, event types,
//! sequences; never a person's identifiers). `RUST_LOG` filters (default
//! `info`); `HUB_LOG_FORMAT=json` writes one JSON object a line.

use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("HUB_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // A log that cannot be written (its disk full) must not take the
    // process down: tracing's own report of the failure is an `eprintln!`,
    // which panics when stderr fails, and would kill the task that logged
    // (a projection's consumer, silently). The line is dropped instead.
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    // A second call (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
