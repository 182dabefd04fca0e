//! rmq — a command-line toolkit for AMQP 0-9-1 brokers, with an embedded broker.
//!
//! Module map:
//! - `cli`     clap definitions, one file per subcommand (`XArgs` + `run`); the only place clap types live
//! - `client`  the only module that touches lapin: connect, topology, confirms, consume, rpc, management API
//! - `output`  everything that prints: table | json | jsonl | tsv | raw, colour, progress
//! - `config`  connection settings: flags > environment > TOML profiles > defaults
//! - `exit`    exit codes (sysexits style), documented in one table
//! - `broker`  the embedded AMQP 0-9-1 broker behind `rmq serve`
//! - `codec`   AMQP 0-9-1 frames and content headers on the wire, shared by `broker` and `perf`
//! - `perf`    `rmq perf`: a lean raw-AMQP load generator (uses lapin's URI parser only)
//! - `tls`     PEM certificate and key files → rustls types, for the broker and the client
//!
//! The binary (`src/main.rs`) adds `big_alloc`, its global allocator: mimalloc, with blocks of
//! 16 MiB and more as mappings that grow without a copy (the only unsafe code beside main's).
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub, clippy::dbg_macro, clippy::todo)]

pub mod broker;
pub mod cli;
pub mod client;
pub(crate) mod codec;
pub mod config;
pub mod exit;
pub mod output;
pub mod perf;
mod tls;
