//! A vhost's topology — exchanges, the bindings between them and queues, queues with
//! their consumers — drawn as a tree for the terminal, Graphviz DOT, or a Mermaid
//! flowchart for Markdown.

use serde_json::{Map, Value};
use std::fmt::Write;

/// What `rmq topology` draws: plain data, whatever broker it came from.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// The vhost, for the title.
    pub vhost: String,
    /// Exchanges worth drawing, sorted by name (the default exchange is implied by every
    /// queue and never drawn).
    pub exchanges: Vec<Exchange>,
    /// Every queue, sorted by name.
    pub queues: Vec<Queue>,
    /// Bindings from the exchanges drawn.
    pub bindings: Vec<Binding>,
}

/// An exchange.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// Its name.
    pub name: String,
    /// direct, fanout, topic, headers, ...
    pub kind: String,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted with its last binding.
    pub auto_delete: bool,
    /// Reachable only through exchange-to-exchange bindings.
    pub internal: bool,
}

/// A queue.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    /// Its name.
    pub name: String,
    /// Consumers attached.
    pub consumers: u64,
    /// Messages held (ready and unacknowledged).
    pub messages: u64,
    /// Survives a restart.
    pub durable: bool,
    /// Owned by one connection.
    pub exclusive: bool,
    /// Deleted with its last consumer.
    pub auto_delete: bool,
}

/// A binding: messages from `source` reach `destination` by `routing_key` (and, for
/// headers exchanges, `arguments`).
#[derive(Debug, Clone, Default)]
pub struct Binding {
    /// The exchange messages come from.
    pub source: String,
    /// Where they go.
    pub destination: String,
    /// Whether that is a queue (else an exchange).
    pub to_queue: bool,
    /// The binding key.
    pub routing_key: String,
    /// Binding arguments (x-match and headers for headers exchanges).
    pub arguments: Map<String, Value>,
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn flags(pairs: &[(bool, &str)]) -> String {
    pairs
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| format!(", {f}"))
        .collect()
}

impl Exchange {
    fn detail(&self) -> String {
        let f = flags(&[
            (self.durable, "durable"),
            (self.auto_delete, "auto-delete"),
            (self.internal, "internal"),
        ]);
        format!("{}{f}", self.kind)
    }
}

impl Queue {
    fn detail(&self) -> String {
        let f = flags(&[
            (self.durable, "durable"),
            (self.exclusive, "exclusive"),
            (self.auto_delete, "auto-delete"),
        ]);
        format!(
            "{}, {}{f}",
            plural(self.consumers, "consumer"),
            plural(self.messages, "message")
        )
    }
}

impl Binding {
    /// The key and arguments as one label ("" when neither says anything).
    fn label(&self) -> String {
        let mut s = self.routing_key.clone();
        if !self.arguments.is_empty() {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&Value::Object(self.arguments.clone()).to_string());
        }
        s
    }

    fn kind(&self) -> &'static str {
        if self.to_queue { "queue" } else { "exchange" }
    }
}

impl Topology {
    fn bindings_of<'a>(&'a self, exchange: &'a str) -> impl Iterator<Item = &'a Binding> {
        self.bindings.iter().filter(move |b| b.source == exchange)
    }

    /// A tree for the terminal: exchanges with their bindings, then the queues.
    pub fn tree(&self) -> String {
        let mut out = format!("vhost '{}'\n", self.vhost);
        let branch = |last: bool| if last { "└── " } else { "├── " };
        let stem = |last: bool| if last { "    " } else { "│   " };
        let nx = self.exchanges.len();
        for (i, x) in self.exchanges.iter().enumerate() {
            let last = i + 1 == nx && self.queues.is_empty();
            let _ = writeln!(out, "{}exchange {} ({})", branch(last), x.name, x.detail());
            let bs: Vec<&Binding> = self.bindings_of(&x.name).collect();
            for (j, b) in bs.iter().enumerate() {
                let label = b.label();
                let label = if label.is_empty() {
                    String::new()
                } else {
                    format!("[{label}] ")
                };
                let _ = writeln!(
                    out,
                    "{}{}{label}→ {} {}",
                    stem(last),
                    branch(j + 1 == bs.len()),
                    b.kind(),
                    b.destination
                );
            }
        }
        if !self.queues.is_empty() {
            let _ = writeln!(out, "{}queues", branch(true));
            for (i, q) in self.queues.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{}{}{} ({})",
                    stem(true),
                    branch(i + 1 == self.queues.len()),
                    q.name,
                    q.detail()
                );
            }
        }
        out
    }

    /// Graphviz DOT (`rmq topology --format dot | dot -Tsvg > topology.svg`).
    pub fn dot(&self) -> String {
        let mut out = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
            dot_escape(&format!("vhost {}", self.vhost))
        );
        for x in &self.exchanges {
            let _ = writeln!(
                out,
                "  \"{}\" [shape=box, style=rounded, label=\"{}\\n({})\"];",
                dot_escape(&format!("x:{}", x.name)),
                dot_escape(&x.name),
                dot_escape(&x.detail())
            );
        }
        for q in &self.queues {
            let _ = writeln!(
                out,
                "  \"{}\" [shape=cylinder, label=\"{}\\n{}\"];",
                dot_escape(&format!("q:{}", q.name)),
                dot_escape(&q.name),
                dot_escape(&q.detail())
            );
        }
        for b in &self.bindings {
            let prefix = if b.to_queue { "q" } else { "x" };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{}\"];",
                dot_escape(&format!("x:{}", b.source)),
                dot_escape(&format!("{prefix}:{}", b.destination)),
                dot_escape(&b.label())
            );
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart, for a ```mermaid block in Markdown.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        // Names may hold anything: nodes get short ids, names go in quoted labels.
        let xid = |name: &str| {
            self.exchanges
                .iter()
                .position(|x| x.name == name)
                .map(|i| format!("x{i}"))
        };
        let qid = |name: &str| {
            self.queues
                .iter()
                .position(|q| q.name == name)
                .map(|i| format!("q{i}"))
        };
        for (i, x) in self.exchanges.iter().enumerate() {
            let _ = writeln!(
                out,
                "  x{i}{{{{\"{}<br/>{}\"}}}}",
                mermaid_escape(&x.name),
                mermaid_escape(&x.detail())
            );
        }
        for (i, q) in self.queues.iter().enumerate() {
            let _ = writeln!(
                out,
                "  q{i}[(\"{}<br/>{}\")]",
                mermaid_escape(&q.name),
                mermaid_escape(&q.detail())
            );
        }
        for b in &self.bindings {
            let dest = if b.to_queue {
                qid(&b.destination)
            } else {
                xid(&b.destination)
            };
            let (Some(from), Some(to)) = (xid(&b.source), dest) else {
                continue; // gone between the listings
            };
            let label = b.label();
            if label.is_empty() {
                let _ = writeln!(out, "  {from} --> {to}");
            } else {
                let _ = writeln!(out, "  {from} -->|\"{}\"| {to}", mermaid_escape(&label));
            }
        }
        out
    }
}

/// A DOT double-quoted string's content: backslashes and quotes escaped, line breaks as
/// spaces (a name may hold anything).
fn dot_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\\' => "\\\\".to_string(),
            '"' => "\\\"".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A Mermaid quoted label's content: entity codes for what Mermaid or HTML would read.
fn mermaid_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '#' => "#35;".to_string(),
            '"' => "#quot;".to_string(),
            '<' => "#lt;".to_string(),
            '>' => "#gt;".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Topology {
        Topology {
            vhost: "/".into(),
            exchanges: vec![Exchange {
                name: "logs\"x".into(),
                kind: "topic".into(),
                ..Exchange::default()
            }],
            queues: vec![Queue {
                name: "q\\1".into(),
                consumers: 1,
                messages: 2,
                durable: true,
                ..Queue::default()
            }],
            bindings: vec![Binding {
                source: "logs\"x".into(),
                destination: "q\\1".into(),
                to_queue: true,
                routing_key: "lazy.#".into(),
                arguments: Map::new(),
            }],
        }
    }

    #[test]
    fn tree_dot_and_mermaid_escape_names() {
        let t = sample();
        let tree = t.tree();
        assert!(tree.contains("exchange logs\"x (topic)"), "{tree}");
        assert!(tree.contains("[lazy.#] → queue q\\1"), "{tree}");
        assert!(
            tree.contains("q\\1 (1 consumer, 2 messages, durable)"),
            "{tree}"
        );
        let dot = t.dot();
        assert!(
            dot.contains("\"x:logs\\\"x\" -> \"q:q\\\\1\" [label=\"lazy.#\"]"),
            "{dot}"
        );
        let m = t.mermaid();
        assert!(m.contains("x0{{\"logs#quot;x<br/>topic\"}}"), "{m}");
        assert!(m.contains("x0 -->|\"lazy.#35;\"| q0"), "{m}");
    }
}
