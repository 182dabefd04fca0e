//! The embedded AMQP 0-9-1 broker behind `rmq serve` (being written on the broker branch).

pub mod config;
pub mod log;
mod server;

pub use config::BrokerConfig;
pub use server::Server;
