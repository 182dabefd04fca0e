//! Broker-wide state: vhosts, users, the direct reply-to registry, id and name sources.

use super::config::BrokerConfig;
use super::recover;
use super::store::Store;
use super::store::queue_log::LogLimits;
use crate::broker::access::AuthDb;
use crate::broker::amqp::registry::Registry;
use crate::broker::model::delivery::ChannelShared;
use crate::broker::model::vhost::VHost;
use crate::broker::ops::alarm::Alarms;
use crate::broker::ops::conn_limit::ConnSlots;
use crate::broker::ops::counters::Counters;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

/// Shared by every connection of one broker.
#[derive(Debug)]
pub(crate) struct BrokerState {
    pub(crate) config: BrokerConfig,
    pub(crate) vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    /// Users and their per-vhost permissions.
    pub(crate) auth: AuthDb,
    /// Persistence for vhosts created later; None in memory.
    pub(crate) store: Option<Arc<Store>>,
    /// Direct reply-to: token → the channel whose reply consumer gets the answers.
    pub(crate) reply_to: Mutex<HashMap<String, Weak<ChannelShared>>>,
    /// Open connections and channels, for the management API.
    pub(crate) registry: Registry,
    /// When the broker started (uptime, rates' first sample).
    pub(crate) started: std::time::Instant,
    /// Broker-wide message totals and rates as of the management sampler's last sample.
    pub(crate) counters: Counters,
    /// Connections past connection.open, against `--max-connections`.
    pub(crate) conn_slots: ConnSlots,
    /// Memory and disk alarms, watched by every connection.
    pub(crate) alarms: Arc<Alarms>,
    next_id: AtomicU64,
    random: RandomState,
}

impl BrokerState {
    /// The broker's state: in memory, or recovered from `config.data_dir`; users,
    /// vhosts and permissions from the data directory, `config.definitions` and
    /// `config.users` (see `access.rs`).
    pub(crate) fn open(config: BrokerConfig) -> std::io::Result<BrokerState> {
        let mut vhosts = HashMap::new();
        let store = match &config.data_dir {
            Some(dir) => {
                let (store, recovery) = Store::open(
                    dir,
                    LogLimits {
                        resident_bytes: config.queue_resident_bytes,
                        segment_bytes: config.log_segment_bytes,
                    },
                )?;
                recover::restore(&mut vhosts, &store, recovery);
                Some(store)
            }
            None => None,
        };
        vhosts
            .entry("/".to_string())
            .or_insert_with(|| Arc::new(VHost::new("/", store.clone())));
        let conn_slots = ConnSlots::new(config.max_connections);
        let health = store.as_ref().map(|s| s.health.clone());
        let alarms = Arc::new(Alarms::new(&config, health));
        let state = BrokerState {
            config,
            vhosts: RwLock::new(vhosts),
            auth: AuthDb::default(),
            store,
            reply_to: Mutex::new(HashMap::new()),
            registry: Registry::default(),
            started: std::time::Instant::now(),
            counters: Counters::default(),
            conn_slots,
            alarms,
            next_id: AtomicU64::new(1),
            random: RandomState::new(),
        };
        state.seed_access()?;
        Ok(state)
    }

    pub(crate) fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// `prefix` + 22 URL-safe base64 characters, as RabbitMQ names `amq.gen-` queues and
    /// `amq.ctag-` consumer tags: unguessable (keyed SipHash of a counter) and unique.
    pub(crate) fn random_name(&self, prefix: &str) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let n = self.next_id();
        let mut words = [0u64; 2];
        for (i, w) in words.iter_mut().enumerate() {
            let mut h = self.random.build_hasher();
            h.write_u64(n);
            h.write_usize(i);
            *w = h.finish();
        }
        let mut bits = u128::from(words[0]) << 64 | u128::from(words[1]);
        let mut name = String::with_capacity(prefix.len() + 22);
        name.push_str(prefix);
        for _ in 0..22 {
            name.push(ALPHABET[(bits & 63) as usize] as char);
            bits >>= 6;
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_look_like_rabbitmqs_and_differ() {
        let s = BrokerState::open(BrokerConfig::default()).unwrap();
        let a = s.random_name("amq.gen-");
        let b = s.random_name("amq.gen-");
        assert_eq!(a.len(), "amq.gen-".len() + 22);
        assert!(a.starts_with("amq.gen-"));
        assert_ne!(a, b);
    }
}
