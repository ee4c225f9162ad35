//! The command line: its arguments and the commands that are clients rather
//! than the server.
//!
//! # Layout
//! - [`args`]: every command's arguments (clap).
//! - [`logging`]: log lines as text or JSON.
//! - [`tail`]: `graph-relay tail`, a subscriber for people and scripts.
//! - [`subscriptions`]: `subscriptions check|sync|list` and `login`.
//! - [`emulator`]: `emulate trigger|lifecycle|approve`, the emulator's control client.

pub mod args;
pub mod emulator;
pub mod logging;
pub mod subscriptions;
pub mod tail;
