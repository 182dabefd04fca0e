//! Exchanges and routing: direct, fanout, topic and headers, as RabbitMQ routes them.

use crate::broker::model::args::as_string;
use crate::broker::model::policy::{self, Applied};
use crate::broker::model::queue::Queue;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::sync::{Arc, RwLock};

/// The four exchange types of AMQP 0-9-1 §3.1.3 as RabbitMQ implements them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub(crate) fn parse(s: &str) -> Option<ExchangeKind> {
        match s {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// Where a binding leads.
#[derive(Debug, Clone)]
pub(crate) enum Dest {
    /// A queue, held directly so routing needs no lookup.
    Queue(Arc<Queue>),
    /// Another exchange (exchange.bind), by name: looked up while routing.
    Exchange(String),
}

impl Dest {
    fn same(&self, other: &Dest) -> bool {
        match (self, other) {
            (Dest::Queue(a), Dest::Queue(b)) => Arc::ptr_eq(a, b),
            (Dest::Exchange(a), Dest::Exchange(b)) => a == b,
            _ => false,
        }
    }
}

/// A binding on an exchange.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// The bound queue or exchange.
    pub(crate) dest: Dest,
    /// Binding key (pattern for topic exchanges).
    pub(crate) routing_key: String,
    /// Binding arguments (the match table for headers exchanges).
    pub(crate) arguments: FieldTable,
}

/// An exchange and its bindings.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) name: String,
    pub(crate) kind: ExchangeKind,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: FieldTable,
    /// The `alternate-exchange` argument: where messages go that this exchange routes
    /// nowhere. It wins over a policy's (rabbit_policy:get_arg).
    alternate_arg: Option<String>,
    /// The policies that apply now; read only when a message routes nowhere.
    policy: RwLock<Option<Arc<Applied>>>,
    /// Read on every publish, written on bind/unbind: a read-mostly lock.
    pub(crate) bindings: RwLock<Vec<Binding>>,
}

impl Exchange {
    pub(crate) fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Exchange {
        let alternate_arg = arguments
            .inner()
            .get("alternate-exchange")
            .and_then(as_string);
        Exchange {
            name: name.to_string(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate_arg,
            policy: RwLock::new(None),
            bindings: RwLock::new(Vec::new()),
        }
    }

    /// Where messages this exchange routes nowhere go: its argument, else a policy's.
    pub(crate) fn alternate(&self) -> Option<String> {
        if let Some(ae) = &self.alternate_arg {
            return Some(ae.clone());
        }
        self.applied_policy()?.settings.alternate_exchange.clone()
    }

    /// The policies that apply now.
    pub(crate) fn applied_policy(&self) -> Option<Arc<Applied>> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Put the policies that apply now in force.
    pub(crate) fn apply_policy(&self, applied: Option<Arc<Applied>>) {
        let mut current = self.policy.write().unwrap_or_else(|e| e.into_inner());
        if !policy::same(current.as_ref(), applied.as_ref()) {
            *current = applied;
        }
    }

    /// Append the queues this message routes to (each once) to `queues`, and the
    /// exchanges it continues to (exchange-to-exchange bindings) to `exchanges`.
    /// Returns whether any binding matched.
    pub(crate) fn route(
        &self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        queues: &mut Vec<Arc<Queue>>,
        exchanges: &mut Vec<String>,
    ) -> bool {
        let bindings = self.bindings.read().unwrap_or_else(|e| e.into_inner());
        let mut any = false;
        for b in bindings.iter() {
            let hit = match self.kind {
                ExchangeKind::Fanout => true,
                ExchangeKind::Direct => b.routing_key == routing_key,
                ExchangeKind::Topic => topic_matches(&b.routing_key, routing_key),
                ExchangeKind::Headers => headers_match(&b.arguments, headers),
            };
            if !hit {
                continue;
            }
            any = true;
            // A queue matched by several bindings gets one copy (RabbitMQ dedups destinations).
            match &b.dest {
                Dest::Queue(q) if !queues.iter().any(|x| Arc::ptr_eq(x, q)) => {
                    queues.push(q.clone())
                }
                Dest::Exchange(x) if !exchanges.contains(x) => exchanges.push(x.clone()),
                _ => {}
            }
        }
        any
    }

    /// Add a binding; binding twice with the same key and arguments is a no-op.
    pub(crate) fn bind(&self, binding: Binding) {
        let mut bindings = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        if !bindings.iter().any(|b| {
            b.dest.same(&binding.dest)
                && b.routing_key == binding.routing_key
                && b.arguments == binding.arguments
        }) {
            bindings.push(binding);
        }
    }

    /// Remove one binding; returns whether it existed.
    pub(crate) fn unbind(&self, dest: &Dest, routing_key: &str, arguments: &FieldTable) -> bool {
        let mut bindings = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        let before = bindings.len();
        bindings.retain(|b| {
            !(b.dest.same(dest) && b.routing_key == routing_key && &b.arguments == arguments)
        });
        before != bindings.len()
    }

    /// Remove every binding to `dest` (it is being deleted); returns how many went.
    pub(crate) fn unbind_all(&self, dest: &Dest) -> usize {
        let mut bindings = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        let before = bindings.len();
        bindings.retain(|b| !b.dest.same(dest));
        before - bindings.len()
    }

    pub(crate) fn binding_count(&self) -> usize {
        self.bindings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// Topic matching as RabbitMQ does it: words split on `.` keeping empty words, `*` is
/// exactly one word, `#` zero or more. Dynamic programming keeps it O(pattern × key)
/// even for hostile patterns like `#.#.#.#`.
pub(crate) fn topic_matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = if pattern.is_empty() {
        Vec::new()
    } else {
        pattern.split('.').collect()
    };
    let k: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    // row[j]: does p[..i] match k[..j]
    let mut row = vec![false; k.len() + 1];
    row[0] = true;
    for word in &p {
        let mut next = vec![false; k.len() + 1];
        if *word == "#" {
            let mut any = false;
            for j in 0..=k.len() {
                any |= row[j];
                next[j] = any;
            }
        } else {
            for j in 1..=k.len() {
                next[j] = row[j - 1] && (*word == "*" || *word == k[j - 1]);
            }
        }
        row = next;
    }
    row[k.len()]
}

/// Headers-exchange matching: `x-match` all (default) / any, and the `-with-x` variants
/// that also compare `x-` keys. A void binding value matches any value of that header.
pub(crate) fn headers_match(binding: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = binding
        .inner()
        .get("x-match")
        .and_then(as_string)
        .unwrap_or_else(|| "all".to_string());
    let (any, with_x) = match mode.as_str() {
        "any" => (true, false),
        "any-with-x" => (true, true),
        "all-with-x" => (false, true),
        _ => (false, false),
    };
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty).inner();
    let mut considered = 0;
    let mut matched = 0;
    for (k, v) in binding.inner() {
        if k.as_str() == "x-match" || (!with_x && k.as_str().starts_with("x-")) {
            continue;
        }
        considered += 1;
        let hit = match headers.get(k.as_str()) {
            Some(h) => matches!(v, AMQPValue::Void) || values_equal(v, h),
            None => false,
        };
        if hit {
            matched += 1;
            if any {
                return true;
            }
        } else if !any {
            return false;
        }
    }
    if any {
        matched > 0
    } else {
        considered == matched
    }
}

/// Equality across AMQP encodings of the same value (a short and a long string, or
/// integers of different widths, are equal when their values are).
fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    fn as_int(v: &AMQPValue) -> Option<i128> {
        Some(match v {
            AMQPValue::ShortShortInt(x) => *x as i128,
            AMQPValue::ShortShortUInt(x) => *x as i128,
            AMQPValue::ShortInt(x) => *x as i128,
            AMQPValue::ShortUInt(x) => *x as i128,
            AMQPValue::LongInt(x) => *x as i128,
            AMQPValue::LongUInt(x) => *x as i128,
            AMQPValue::LongLongInt(x) => *x as i128,
            AMQPValue::Timestamp(x) => *x as i128,
            _ => return None,
        })
    }
    fn as_bytes(v: &AMQPValue) -> Option<&[u8]> {
        match v {
            AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
            AMQPValue::LongString(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
    if let (Some(x), Some(y)) = (as_int(a), as_int(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (as_bytes(a), as_bytes(b)) {
        return x == y;
    }
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_semantics_match_rabbitmq() {
        // The tutorial's own examples.
        assert!(topic_matches("*.orange.*", "quick.orange.rabbit"));
        assert!(topic_matches("*.*.rabbit", "lazy.pink.rabbit"));
        assert!(topic_matches("lazy.#", "lazy.pink.rabbit"));
        assert!(!topic_matches("*.orange.*", "quick.orange.male.rabbit"));
        assert!(!topic_matches("*.*.rabbit", "quick.orange.male.rabbit"));
        assert!(topic_matches("lazy.#", "lazy.orange.male.rabbit"));
        // Edge cases from SEMANTICS.md.
        assert!(topic_matches("a.#", "a"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#", "a.b.c"));
        assert!(topic_matches("a.*.b", "a..b"));
        assert!(!topic_matches("*", ""));
        assert!(topic_matches("*", "a"));
        assert!(topic_matches("", ""));
        assert!(!topic_matches("a", "a.b"));
        assert!(topic_matches("#.b.#", "a.b.c"));
        assert!(topic_matches(
            "#.#.#.#.#.#.#.#.#.#.z",
            "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.z"
        ));
    }

    #[test]
    fn headers_all_any_and_with_x() {
        let mut b = FieldTable::default();
        b.insert("x-match".into(), AMQPValue::LongString("any".into()));
        b.insert("format".into(), AMQPValue::LongString("pdf".into()));
        b.insert("type".into(), AMQPValue::LongString("report".into()));
        let mut h = FieldTable::default();
        h.insert("format".into(), AMQPValue::ShortString("pdf".into()));
        assert!(headers_match(&b, Some(&h)));
        b.insert("x-match".into(), AMQPValue::LongString("all".into()));
        assert!(!headers_match(&b, Some(&h)));
        h.insert("type".into(), AMQPValue::LongString("report".into()));
        assert!(headers_match(&b, Some(&h)));
        let mut bx = FieldTable::default();
        bx.insert("x-match".into(), AMQPValue::LongString("all-with-x".into()));
        bx.insert("x-tenant".into(), AMQPValue::LongInt(7));
        assert!(!headers_match(&bx, Some(&h)));
        h.insert("x-tenant".into(), AMQPValue::ShortShortUInt(7));
        assert!(headers_match(&bx, Some(&h)));
    }
}
