//! Start-up from `--data-dir`: rebuild durable exchanges, queues (with the messages their
//! logs still hold, in order, delivered ones marked redelivered) and bindings.

use super::store::definitions::{Def, decode_args};
use super::store::{RecoveredQueue, Recovery, Store};
use crate::broker::model::args::QueueArgs;
use crate::broker::model::exchange::{Exchange, ExchangeKind};
use crate::broker::model::queue::{Entry, QueueSpec, unix_ms};
use crate::broker::model::vhost::VHost;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Put everything `recovery` found into `vhosts` (creating vhosts it names).
pub(crate) fn restore(
    vhosts: &mut HashMap<String, Arc<VHost>>,
    store: &Arc<Store>,
    recovery: Recovery,
) {
    for p in &recovery.problems {
        tracing::error!("recovery: {p}");
    }
    let mut vhost = |name: &str| -> Arc<VHost> {
        vhosts
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(VHost::new(name, Some(store.clone()))))
            .clone()
    };
    for d in recovery.exchanges {
        let Def::Exchange {
            vhost: v,
            name,
            kind,
            auto_delete,
            internal,
            args,
        } = d
        else {
            continue;
        };
        let Some(kind) = ExchangeKind::parse(&kind) else {
            continue;
        };
        let x = Exchange::new(&name, kind, true, auto_delete, internal, decode_args(&args));
        vhost(&v).restore_exchange(x);
    }
    let mut messages = 0usize;
    for rq in recovery.queues {
        let vh = vhost(&rq.vhost);
        messages += rq.messages.len();
        restore_queue(&vh, rq);
    }
    for d in recovery.bindings {
        let Def::Bind {
            vhost: v,
            source,
            destination,
            to_queue,
            key,
            args,
        } = d
        else {
            continue;
        };
        vhost(&v).restore_binding(&source, &destination, to_queue, key, decode_args(&args));
    }
    tracing::info!("recovered {messages} persistent messages");
}

fn restore_queue(vhost: &Arc<VHost>, rq: RecoveredQueue) {
    let arguments = decode_args(&rq.args);
    // Arguments were validated when the queue was first declared.
    let args = QueueArgs::parse(&arguments, &rq.name, &vhost.name).unwrap_or_default();
    let now_unix = unix_ms();
    let now = Instant::now();
    let entries: Vec<Entry> = rq
        .messages
        .into_iter()
        .map(|m| Entry {
            // Loaded by Queue::restore up to its resident limit; the rest stay on disk.
            msg: None,
            redelivered: m.delivered,
            seq: m.seq,
            expires_at: (m.expires_unix_ms != 0)
                .then(|| now + Duration::from_millis(m.expires_unix_ms.saturating_sub(now_unix))),
            stored: Some((m.segment, m.offset)),
            size: m.size,
            priority: m.priority,
            delivery_count: 0,
        })
        .collect();
    let spec = QueueSpec {
        name: rq.name,
        durable: true,
        exclusive_owner: None,
        auto_delete: rq.auto_delete,
        arguments,
        args,
    };
    vhost.restore_queue(spec, (rq.id, rq.log), entries, rq.next_seq);
}
