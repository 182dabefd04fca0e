//! Routing a publish through a vhost: bindings, exchange-to-exchange bindings, the
//! alternate exchange, and a message's `CC`/`BCC` keys.

use crate::broker::model::exchange::Exchange;
use crate::broker::model::message::Message;
use crate::broker::model::queue::Queue;
use crate::broker::model::vhost::VHost;
use amq_protocol::types::FieldTable;
use std::sync::Arc;

impl VHost {
    /// Queues a message published to `exchange` reaches, each once: through
    /// exchange-to-exchange bindings (every exchange visited at most once, so binding
    /// cycles end), and to an exchange's `alternate-exchange` when none of its bindings
    /// match (rabbit_exchange:route). The default exchange routes to the queue named by
    /// the routing key (AMQP 0-9-1 §3.1.3.1).
    pub(crate) fn route(
        &self,
        exchange: &Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Vec<Arc<Queue>> {
        let mut queues = Vec::new();
        // Allocated only when routing goes past the first exchange: the hot path is one
        // direct lookup.
        let mut visited = Vec::new();
        self.route_from(
            exchange,
            routing_key,
            headers,
            &mut queues,
            (&exchange.name, &mut visited),
        );
        queues
    }

    /// Queues `msg` reaches under its routing key and its `CC`/`BCC` keys, each once.
    /// (A dead-lettered copy without `x-dead-letter-routing-key` keeps all of them.)
    pub(crate) fn route_message(&self, exchange: &Exchange, msg: &Message) -> Vec<Arc<Queue>> {
        let headers = msg.properties.headers().as_ref();
        let mut queues = self.route(exchange, &msg.routing_key, headers);
        for key in msg.cc.iter().chain(&msg.bcc) {
            for q in self.route(exchange, key, headers) {
                if !queues.iter().any(|x| Arc::ptr_eq(x, &q)) {
                    queues.push(q);
                }
            }
        }
        queues
    }

    fn route_from(
        &self,
        exchange: &Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
        queues: &mut Vec<Arc<Queue>>,
        (root, visited): (&str, &mut Vec<String>),
    ) {
        let mut next = Vec::new();
        let hit = if exchange.name.is_empty() {
            match self.queue(routing_key) {
                Some(q) => {
                    if !queues.iter().any(|x| Arc::ptr_eq(x, &q)) {
                        queues.push(q);
                    }
                    true
                }
                None => false,
            }
        } else {
            exchange.route(routing_key, headers, queues, &mut next)
        };
        if !hit && let Some(ae) = exchange.alternate() {
            next.push(ae);
        }
        for name in next {
            if name == root || visited.contains(&name) {
                continue;
            }
            visited.push(name.clone());
            if let Some(x) = self.exchange(&name) {
                self.route_from(&x, routing_key, headers, queues, (root, &mut *visited));
            }
        }
    }
}
