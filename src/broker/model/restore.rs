//! Start-up's door into the topology: durable exchanges, queues and bindings come back
//! from the data directory (`broker::recover` reads them). No permission, equivalence or
//! limit check — each passed when the object was first declared — and no record, since
//! the record is what is being read. Nothing else is running yet, so no `declaring`.

use crate::broker::model::exchange::{Binding, Dest, Exchange};
use crate::broker::model::queue::{Entry, Queue, QueueSpec};
use crate::broker::model::vhost::VHost;
use crate::broker::store::queue_log::QueueLog;
use amq_protocol::types::FieldTable;
use std::sync::Arc;

impl VHost {
    /// A durable exchange as it was recorded (a standard one of the name is replaced).
    pub(crate) fn restore_exchange(&self, x: Exchange) {
        self.exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(x.name.clone(), Arc::new(x));
    }

    /// A durable queue with its log and the messages the log still holds. Policies are
    /// read after the queues and apply to them then.
    pub(crate) fn restore_queue(
        self: &Arc<Self>,
        spec: QueueSpec,
        log: (u64, QueueLog),
        entries: Vec<Entry>,
        next_seq: u64,
    ) {
        let q = Queue::create(spec, self, Some(log), None);
        q.restore(entries, next_seq);
        self.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(q.name.clone(), q);
    }

    /// A durable binding, when its source and destination came back (a record that
    /// outlived one of them is dropped with it).
    pub(crate) fn restore_binding(
        &self,
        source: &str,
        destination: &str,
        to_queue: bool,
        routing_key: String,
        arguments: FieldTable,
    ) {
        let Some(x) = self.exchange(source) else {
            return;
        };
        let dest = if to_queue {
            match self.queue(destination) {
                Some(q) => Dest::Queue(q),
                None => return,
            }
        } else {
            Dest::Exchange(destination.to_string())
        };
        x.bind(Binding {
            dest,
            routing_key,
            arguments,
        });
    }
}
