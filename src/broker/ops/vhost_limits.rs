//! Per-vhost limits, RabbitMQ's `rabbitmqctl set_vhost_limits`: `max-connections` and
//! `max-queues`; a negative value (or none) means no limit, 0 allows none.

use serde_json::{Map, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug)]
pub(crate) struct VhostLimits {
    max_connections: AtomicI64,
    max_queues: AtomicI64,
    /// Connections holding a [`VhostConnSlot`]: counted and checked in one atomic step,
    /// so concurrent connects cannot all pass a limit they only reach together.
    open_connections: Arc<AtomicU64>,
}

impl Default for VhostLimits {
    fn default() -> Self {
        VhostLimits {
            max_connections: AtomicI64::new(-1),
            max_queues: AtomicI64::new(-1),
            open_connections: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// A connection's place under its vhost's `max-connections`, given back when dropped.
#[derive(Debug)]
pub(crate) struct VhostConnSlot(Arc<AtomicU64>);

impl Drop for VhostConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl VhostLimits {
    fn slot(&self, name: &str) -> Result<&AtomicI64, String> {
        match name {
            "max-connections" => Ok(&self.max_connections),
            "max-queues" => Ok(&self.max_queues),
            other => Err(format!(
                "unknown vhost limit '{other}' (max-connections, max-queues)"
            )),
        }
    }

    /// Set one limit; negative clears it.
    pub(crate) fn set(&self, name: &str, value: i64) -> Result<(), String> {
        self.slot(name)?.store(value.max(-1), Ordering::Relaxed);
        Ok(())
    }

    /// Clear one limit; false when it was not set.
    pub(crate) fn clear(&self, name: &str) -> Result<bool, String> {
        Ok(self.slot(name)?.swap(-1, Ordering::Relaxed) >= 0)
    }

    fn get(slot: &AtomicI64) -> Option<u64> {
        u64::try_from(slot.load(Ordering::Relaxed)).ok()
    }

    pub(crate) fn max_connections(&self) -> Option<u64> {
        Self::get(&self.max_connections)
    }

    pub(crate) fn max_queues(&self) -> Option<u64> {
        Self::get(&self.max_queues)
    }

    /// Take a place for one more connection, or the limit that is reached.
    pub(crate) fn try_connect(&self) -> Result<VhostConnSlot, u64> {
        let max = self.max_connections();
        self.open_connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| match max {
                Some(max) if n >= max => None,
                _ => Some(n + 1),
            })
            .map_err(|_| max.unwrap_or(0))?;
        Ok(VhostConnSlot(self.open_connections.clone()))
    }

    /// The limits that are set, as RabbitMQ shows them (`{"max-queues": 10}`); None
    /// when there are none.
    pub(crate) fn to_json(&self) -> Option<Value> {
        let mut m = Map::new();
        for (name, v) in [
            ("max-connections", self.max_connections()),
            ("max-queues", self.max_queues()),
        ] {
            if let Some(v) = v {
                m.insert(name.into(), v.into());
            }
        }
        (!m.is_empty()).then_some(Value::Object(m))
    }

    /// Replace the limits with those of a `{"max-queues": 10, ...}` object.
    pub(crate) fn replace_from_json(&self, v: &Value) -> Result<(), String> {
        let Value::Object(m) = v else {
            return Err(format!("vhost limits must be an object, got {v}"));
        };
        let parsed = m
            .iter()
            .map(|(k, v)| {
                self.slot(k)?;
                v.as_i64()
                    .map(|n| (k.as_str(), n))
                    .ok_or_else(|| format!("vhost limit '{k}' must be an integer, got {v}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        self.max_connections.store(-1, Ordering::Relaxed);
        self.max_queues.store(-1, Ordering::Relaxed);
        for (k, n) in parsed {
            self.set(k, n)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_round_trip_and_negative_means_none() {
        let l = VhostLimits::default();
        assert_eq!(l.to_json(), None);
        l.replace_from_json(&json!({"max-queues": 2, "max-connections": -1}))
            .unwrap();
        assert_eq!(l.max_queues(), Some(2));
        assert_eq!(l.max_connections(), None);
        assert_eq!(l.to_json(), Some(json!({"max-queues": 2})));
        assert!(l.set("max-channels", 1).is_err());
        assert!(l.replace_from_json(&json!({"max-queues": "x"})).is_err());
        assert_eq!(l.max_queues(), Some(2), "a bad object changes nothing");
        assert!(l.clear("max-queues").unwrap());
        l.set("max-connections", 2).unwrap();
        let a = l.try_connect().unwrap();
        let _b = l.try_connect().unwrap();
        assert_eq!(l.try_connect().unwrap_err(), 2);
        drop(a);
        assert!(l.try_connect().is_ok());
        assert!(!l.clear("max-queues").unwrap());
    }
}
