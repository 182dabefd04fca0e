//! Start-up from `--data-dir`: rebuild durable exchanges, queues (with the messages their
//! logs still hold, in order, delivered ones marked redelivered) and bindings.

use super::store::definitions::{Def, decode_args};
use super::store::{RecoveredQueue, Recovery, Store};
use crate::broker::model::args::QueueArgs;
use crate::broker::model::exchange::{Binding, Dest, Exchange, ExchangeKind};
use crate::broker::model::queue::{Entry, Queue, QueueSpec, unix_ms};
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
        vhost(&v)
            .exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, Arc::new(x));
    }
    let mut messages = 0usize;
    for rq in recovery.queues {
        let vh = vhost(&rq.vhost);
        messages += rq.messages.len();
        let q = restore_queue(&vh, rq);
        vh.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(q.name.clone(), q);
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
        let vh = vhost(&v);
        let Some(x) = vh.exchange(&source) else {
            continue;
        };
        let dest = if to_queue {
            match vh.queue(&destination) {
                Some(q) => Dest::Queue(q),
                None => continue,
            }
        } else {
            Dest::Exchange(destination)
        };
        x.bind(Binding {
            dest,
            routing_key: key,
            arguments: decode_args(&args),
        });
    }
    tracing::info!("recovered {messages} persistent messages");
}

fn restore_queue(vhost: &Arc<VHost>, rq: RecoveredQueue) -> Arc<Queue> {
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
    // Policies come with the access records, read after this; they apply then.
    let q = Queue::create(spec, vhost, Some((rq.id, rq.log)), None);
    q.restore(entries, rq.next_seq);
    q
}
