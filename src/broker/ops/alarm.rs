//! Resource alarms (RabbitMQ's vm_memory_monitor and rabbit_disk_monitor): one task
//! samples the process's memory and the data directory's free space a few times per
//! second and raises or clears the memory and disk alarms; connections watch the alarm
//! set and block publishers while any alarm is on (see `flow`).

use crate::broker::config::{BrokerConfig, MemoryWatermark};
use crate::broker::ops::sysinfo;
use crate::broker::store::health::{RESERVE_BYTES, StoreHealth};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How often memory and disk are sampled (RabbitMQ: memory every 500 ms, disk every
/// 10 s; faster here because sampling is two cheap reads).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Past 80% of the watermark: a fast publisher adds ~15 MB per 100 ms, so the alarm
/// would trip well past the line; sampling faster near it keeps the overshoot small.
const SAMPLE_NEAR: Duration = Duration::from_millis(10);

/// Which alarms are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AlarmSet {
    pub(crate) memory: bool,
    pub(crate) disk: bool,
}

impl AlarmSet {
    pub(crate) fn any(self) -> bool {
        self.memory || self.disk
    }

    /// The reason connection.blocked carries, in RabbitMQ's words (rabbit_reader).
    pub(crate) fn reason(self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on memory & disk",
            (true, false) => "low on memory",
            (false, true) => "low on disk",
            (false, false) => "",
        }
    }
}

/// The alarms and the figures behind them (listed by the management API).
#[derive(Debug)]
pub(crate) struct Alarms {
    /// The current set; every connection holds a receiver.
    set: watch::Sender<AlarmSet>,
    /// The configured watermark; changed at run time through `AlarmControl`.
    watermark: Mutex<MemoryWatermark>,
    /// Directory whose filesystem is checked; `None` (in memory): no disk alarm.
    data_dir: Option<PathBuf>,
    /// Wakes the monitor early when a limit changes, so the change applies at once.
    limits_changed: Notify,
    /// Process RSS at the last sample, bytes.
    pub(crate) mem_used: AtomicU64,
    /// The memory watermark in bytes (`u64::MAX` when RAM is unknown).
    pub(crate) mem_limit: AtomicU64,
    /// Free bytes on the data directory's filesystem at the last sample (0 in memory).
    pub(crate) disk_free: AtomicU64,
    /// The disk free limit in bytes.
    pub(crate) disk_free_limit: AtomicU64,
    /// The store's health: a failed store (fsync error, data directory gone) holds the
    /// disk alarm on until a restart; sampling also checks the directory is still ours.
    store: Option<Arc<StoreHealth>>,
}

impl Alarms {
    /// The alarms as of a first sample, so a broker that starts above its watermark
    /// blocks publishers from the first connection.
    pub(crate) fn new(config: &BrokerConfig, store: Option<Arc<StoreHealth>>) -> Alarms {
        let alarms = Alarms {
            set: watch::Sender::new(AlarmSet::default()),
            watermark: Mutex::new(config.memory_high_watermark),
            data_dir: config.data_dir.clone(),
            limits_changed: Notify::new(),
            mem_used: AtomicU64::new(0),
            mem_limit: AtomicU64::new(u64::MAX),
            disk_free: AtomicU64::new(0),
            disk_free_limit: AtomicU64::new(config.disk_free_limit),
            store,
        };
        alarms.resolve_watermark();
        alarms.sample();
        alarms
    }

    /// The disk alarm as reported: a failed store holds it on even before the sampler
    /// has run since the failure.
    pub(crate) fn disk_alarm(&self) -> bool {
        self.current().disk || self.storage_failure().is_some()
    }

    /// Why the store failed, if it did.
    pub(crate) fn storage_failure(&self) -> Option<String> {
        self.store.as_ref().and_then(|h| h.failure())
    }

    /// Watch the alarm set (a connection's throttle).
    pub(crate) fn subscribe(&self) -> watch::Receiver<AlarmSet> {
        self.set.subscribe()
    }

    pub(crate) fn current(&self) -> AlarmSet {
        *self.set.borrow()
    }

    /// Turn the configured watermark into bytes (RAM is read once per change).
    fn resolve_watermark(&self) {
        let watermark = *self.watermark.lock().unwrap_or_else(|e| e.into_inner());
        let limit = match watermark {
            MemoryWatermark::Absolute(n) => n,
            MemoryWatermark::Relative(f) => match sysinfo::available_ram() {
                Some(ram) => (ram as f64 * f) as u64,
                None => {
                    tracing::error!("cannot read the amount of RAM: memory alarm disabled");
                    u64::MAX
                }
            },
        };
        self.mem_limit.store(limit, Ordering::Relaxed);
    }

    /// Take one sample and set or clear the alarms, logging each change.
    fn sample(&self) {
        let used = sysinfo::rss().unwrap_or(0);
        let limit = self.mem_limit.load(Ordering::Relaxed);
        self.mem_used.store(used, Ordering::Relaxed);
        let memory = used > limit;
        let disk = match &self.data_dir {
            Some(dir) => {
                let free = sysinfo::disk_free(dir).unwrap_or(u64::MAX);
                self.disk_free.store(free, Ordering::Relaxed);
                free < self.disk_free_limit.load(Ordering::Relaxed)
            }
            None => false,
        };
        let failed = self.store.as_ref().is_some_and(|h| !h.check_dir());
        if let Some(health) = &self.store {
            // After a full disk: hold the reserve again once there is clearly room for it.
            let room = self.disk_free.load(Ordering::Relaxed);
            let limit = self.disk_free_limit.load(Ordering::Relaxed);
            if !disk && !failed && room >= limit.saturating_add(2 * RESERVE_BYTES as u64) {
                health.take_reserve();
            }
        }
        let disk = disk || failed;
        let before = self.current();
        if before.memory != memory {
            tracing::info!(
                "memory alarm {}: used {used} bytes, limit {limit} bytes",
                if memory { "set" } else { "cleared" }
            );
        }
        if before.disk != disk {
            tracing::info!(
                "disk alarm {}: free {} bytes, limit {} bytes",
                if disk { "set" } else { "cleared" },
                self.disk_free.load(Ordering::Relaxed),
                self.disk_free_limit.load(Ordering::Relaxed)
            );
        }
        self.set.send_if_modified(|set| {
            let next = AlarmSet { memory, disk };
            let changed = *set != next;
            *set = next;
            changed
        });
    }
}

/// Sample until shutdown.
pub(crate) async fn monitor(alarms: Arc<Alarms>, mut shutdown: watch::Receiver<bool>) {
    let mut reclaimed = tokio::time::Instant::now();
    loop {
        let used = alarms.mem_used.load(Ordering::Relaxed);
        let near = used > alarms.mem_limit.load(Ordering::Relaxed) / 10 * 8;
        let wait = if near { SAMPLE_NEAR } else { SAMPLE_EVERY };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = alarms.limits_changed.notified() => alarms.resolve_watermark(),
            _ = shutdown.changed() => return,
        }
        alarms.sample();
        // Collecting walks the allocator's heaps: ten times a second is plenty.
        if alarms.current().memory && reclaimed.elapsed() >= SAMPLE_EVERY {
            reclaimed = tokio::time::Instant::now();
            crate::broker::ops::reclaim::request();
        }
    }
}

/// Change the limits of a running broker, as `rabbitmqctl set_vm_memory_high_watermark`
/// and `set_disk_free_limit` do; the alarms are re-evaluated at once.
#[derive(Debug, Clone)]
pub struct AlarmControl {
    pub(crate) alarms: Arc<Alarms>,
}

impl AlarmControl {
    pub fn set_memory_high_watermark(&self, watermark: MemoryWatermark) {
        *self
            .alarms
            .watermark
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = watermark;
        self.alarms.limits_changed.notify_one();
    }

    pub fn set_disk_free_limit(&self, bytes: u64) {
        self.alarms.disk_free_limit.store(bytes, Ordering::Relaxed);
        self.alarms.limits_changed.notify_one();
    }

    /// Whether the memory alarm is on.
    pub fn memory_alarm(&self) -> bool {
        self.alarms.current().memory
    }

    /// Whether the disk alarm is on (a failed store holds it on).
    pub fn disk_alarm(&self) -> bool {
        self.alarms.disk_alarm()
    }

    /// Why the store failed (nothing more is confirmed as durable), if it did.
    pub fn storage_failure(&self) -> Option<String> {
        self.alarms.storage_failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_follow_the_limits_and_name_their_reason() {
        let config = BrokerConfig {
            memory_high_watermark: MemoryWatermark::Absolute(1),
            ..BrokerConfig::default()
        };
        let alarms = Alarms::new(&config, None);
        assert_eq!(alarms.current().reason(), "low on memory");
        *alarms.watermark.lock().unwrap() = MemoryWatermark::Absolute(u64::MAX);
        alarms.resolve_watermark();
        alarms.sample();
        assert!(!alarms.current().any());
        let both = AlarmSet {
            memory: true,
            disk: true,
        };
        assert_eq!(both.reason(), "low on memory & disk");
    }
}
