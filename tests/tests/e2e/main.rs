//! The end-to-end tests: the real worker under `wrangler dev` (workerd), the
//! real fan-out binary, the Graph emulator, real clients. One test binary, a
//! module per area, so the harness is linked once.

mod adversarial;
mod answer_budget;
mod bad_input;
mod chaos;
mod clients;
mod decryption;
mod delivery_identity;
mod deployment;
mod disk_faults;
mod durability;
mod emulator;
mod fanout_down;
mod handshake;
mod ingest_port;
mod metrics;
mod operability;
mod pipeline;
mod publish_auth;
mod queue;
mod reload;
mod replicas;
mod rich_notifications;
mod subscriber_access;
mod subscriptions;
mod tail;
mod tls;
mod token_rules;
