//! Operating the node: resource alarms, connection and vhost limits, counters, and
//! what the process knows about its machine. Depends only on `store` (the disk alarm
//! reads its health) and the broker's config.
//!
//! - `alarm`        memory and disk alarms: the sampling task, run-time limits
//! - `sysinfo`      process RSS, available RAM (cgroup-aware), free disk space
//! - `reclaim`      freed memory back to the OS while the memory alarm is on
//! - `conn_limit`   the node-wide connection limit (`--max-connections`)
//! - `vhost_limits` per-vhost max-connections and max-queues
//! - `counters`     message counters and rates for `message_stats` and `/metrics`

pub(crate) mod alarm;
pub(crate) mod conn_limit;
pub(crate) mod counters;
pub mod reclaim;
pub(crate) mod sysinfo;
pub(crate) mod vhost_limits;
