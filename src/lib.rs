//! rmq — a command-line toolkit for AMQP 0-9-1 brokers, with an embedded broker.
//!
//! Module map:
//! - `cli`     clap definitions, one file per subcommand (`XArgs` + `run`); the only place clap types live
//! - `client`  the only module that touches lapin: connect, topology, confirms, consume, rpc, management API
//! - `output`  everything that prints: table | json | jsonl | tsv | raw, colour, progress
//! - `exit`    exit codes (sysexits style), documented in one table
//! - `broker`  the embedded AMQP 0-9-1 broker behind `rmq serve`
//! - `perf`    `rmq perf`: a lean raw-AMQP load generator (uses lapin's URI parser only)
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub, clippy::dbg_macro, clippy::todo)]

pub mod broker;
pub mod cli;
pub mod client;
pub mod exit;
pub mod output;
pub mod perf;
