//! Where and how log lines are written: stderr, filtered by `RUST_LOG`
//! (default `info`), as text or as JSON lines (`--log-format`).
//!
//! Fields carry what a line is about (`sequence`, `subscription_id`,
//! `subscriber`, `entry`), never a token, a clientState or resource data.

use super::args::LogFormat;

pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}
