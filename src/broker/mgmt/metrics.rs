//! Prometheus `GET /metrics` in the text exposition format, with the names of RabbitMQ's
//! `rabbitmq_prometheus` plugin where one exists (aggregated, per-object metrics off, as
//! its default endpoint answers). Unauthenticated, like RabbitMQ's port 15692.

use super::Api;
use super::stats::broker_totals;
use crate::broker::ops::counters::Stat;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# TYPE {name} {kind}\n# HELP {name} {help}\n{name} {value}"
    );
}

pub(super) async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    let (mut ready, mut unacked, mut consumers, mut queues) = (0u64, 0u64, 0u64, 0u64);
    for v in api.all_vhosts() {
        let qs: Vec<_> = v.queue_list();
        queues += qs.len() as u64;
        for q in qs {
            let s = q.snapshot();
            ready += s.ready;
            unacked += s.unacked;
            consumers += s.consumers.len() as u64;
        }
    }
    let conns = api.broker.registry.connections();
    let channels: usize = conns.iter().map(|c| c.channels().len()).sum();
    let t = broker_totals(&api.broker);
    let n = |s: Stat| t[s as usize];
    // No RabbitMQ name for this one: rmq's group commit, for the durability benchmark.
    let fsyncs = api
        .all_vhosts()
        .iter()
        .find_map(|v| {
            v.store
                .as_ref()
                .map(|s| s.syncer.syncs.load(std::sync::atomic::Ordering::Relaxed))
        })
        .unwrap_or(0);
    let alarms = &api.broker.alarms;
    let set = alarms.current();
    let figure = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    // (name, type, help, value): RabbitMQ's names where one exists.
    let rows: [(&str, &str, &str, u64); 28] = [
        (
            "rabbitmq_alarms_memory_used_watermark",
            "gauge",
            "is set when a node has reached its memory high watermark",
            u64::from(set.memory),
        ),
        (
            "rabbitmq_alarms_free_disk_space_watermark",
            "gauge",
            "is set when a node has reached its free disk space low watermark",
            u64::from(alarms.disk_alarm()),
        ),
        (
            "rmq_storage_failed",
            "gauge",
            "is set when the store failed (fsync error, data directory gone): nothing more is confirmed as durable",
            u64::from(alarms.storage_failure().is_some()),
        ),
        (
            "rabbitmq_process_resident_memory_bytes",
            "gauge",
            "Memory used in bytes",
            figure(&alarms.mem_used),
        ),
        (
            "rabbitmq_resident_memory_limit_bytes",
            "gauge",
            "Memory high watermark in bytes",
            figure(&alarms.mem_limit),
        ),
        (
            "rabbitmq_disk_space_available_bytes",
            "gauge",
            "Disk space available in bytes",
            figure(&alarms.disk_free),
        ),
        (
            "rabbitmq_disk_space_available_limit_bytes",
            "gauge",
            "Free disk space low watermark in bytes",
            figure(&alarms.disk_free_limit),
        ),
        (
            "rabbitmq_connections",
            "gauge",
            "Connections currently open",
            conns.len() as u64,
        ),
        (
            "rabbitmq_channels",
            "gauge",
            "Channels currently open",
            channels as u64,
        ),
        ("rabbitmq_queues", "gauge", "Queues available", queues),
        (
            "rabbitmq_consumers",
            "gauge",
            "Consumers currently connected",
            consumers,
        ),
        (
            "rabbitmq_queue_messages_ready",
            "gauge",
            "Messages ready to be delivered to consumers",
            ready,
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "gauge",
            "Messages delivered to consumers but not yet acknowledged",
            unacked,
        ),
        (
            "rabbitmq_queue_messages",
            "gauge",
            "Sum of ready and unacknowledged messages - total queue depth",
            ready + unacked,
        ),
        (
            "rabbitmq_global_messages_received_total",
            "counter",
            "Total number of messages received from publishers",
            n(Stat::Publish),
        ),
        (
            "rabbitmq_global_messages_confirmed_total",
            "counter",
            "Total number of messages confirmed to publishers",
            n(Stat::Confirm),
        ),
        (
            "rabbitmq_global_messages_routed_total",
            "counter",
            "Total number of messages routed to queues or streams",
            n(Stat::Publish).saturating_sub(n(Stat::DropUnroutable) + n(Stat::ReturnUnroutable)),
        ),
        (
            "rabbitmq_global_messages_unroutable_dropped_total",
            "counter",
            "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
            n(Stat::DropUnroutable),
        ),
        (
            "rabbitmq_global_messages_unroutable_returned_total",
            "counter",
            "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
            n(Stat::ReturnUnroutable),
        ),
        (
            "rabbitmq_global_messages_delivered_total",
            "counter",
            "Total number of messages delivered to consumers",
            n(Stat::Deliver) + n(Stat::DeliverNoAck) + n(Stat::Get) + n(Stat::GetNoAck),
        ),
        (
            "rabbitmq_global_messages_delivered_consume_manual_ack_total",
            "counter",
            "Total number of messages delivered to consumers using manual acknowledgement mode",
            n(Stat::Deliver),
        ),
        (
            "rabbitmq_global_messages_delivered_consume_auto_ack_total",
            "counter",
            "Total number of messages delivered to consumers using automatic acknowledgement mode",
            n(Stat::DeliverNoAck),
        ),
        (
            "rabbitmq_global_messages_delivered_get_manual_ack_total",
            "counter",
            "Total number of messages delivered to consumers via basic.get using manual acknowledgement mode",
            n(Stat::Get),
        ),
        (
            "rabbitmq_global_messages_delivered_get_auto_ack_total",
            "counter",
            "Total number of messages delivered to consumers via basic.get using automatic acknowledgement mode",
            n(Stat::GetNoAck),
        ),
        (
            "rabbitmq_global_messages_get_empty_total",
            "counter",
            "Total number of times basic.get operations fetched no message",
            n(Stat::GetEmpty),
        ),
        (
            "rabbitmq_global_messages_redelivered_total",
            "counter",
            "Total number of messages redelivered to consumers",
            n(Stat::Redeliver),
        ),
        (
            "rabbitmq_global_messages_acknowledged_total",
            "counter",
            "Total number of messages acknowledged by consumers",
            n(Stat::Ack),
        ),
        (
            "rmq_disk_fdatasyncs_total",
            "counter",
            "fdatasync calls made by the group-commit thread for queue logs",
            fsyncs,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        metric(&mut out, name, kind, help, value);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
