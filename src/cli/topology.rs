//! `rmq topology`: a vhost's exchanges, bindings (keys and arguments) and queues (with
//! their consumers), from the management API, drawn as a tree, Graphviz DOT or Mermaid.

use super::Ctx;
use super::admin::{Admin, VhostArgs};
use crate::client::api_list;
use crate::output::graph::{Binding, Exchange, Queue, Topology};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

/// Draw a vhost's exchanges, bindings and queues.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq topology                                       # a tree on the terminal\n  rmq topology --format dot | dot -Tsvg > topology.svg\n  rmq topology --format mermaid --vhost staging      # paste into a ```mermaid block\n\nEvery queue is drawn, with its consumers and messages; exchanges with their bindings\n(routing keys and arguments), except the default exchange (it reaches every queue by name)\nand the predeclared amq.* exchanges that have no bindings."
)]
pub(crate) struct TopologyArgs {
    /// How to draw it.
    #[arg(long, value_enum, default_value = "tree", value_name = "FORMAT")]
    format: GraphFormat,
    #[command(flatten)]
    at: VhostArgs,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    /// Indented text for the terminal.
    Tree,
    /// Graphviz DOT (render with `dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart (GitHub and GitLab render it in Markdown).
    Mermaid,
}

pub(crate) async fn run(args: TopologyArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let admin = Admin::in_vhost(ctx, &args.at)?;
    let topology = fetch(&admin).await?;
    let text = match args.format {
        GraphFormat::Tree => topology.tree(),
        GraphFormat::Dot => topology.dot(),
        GraphFormat::Mermaid => topology.mermaid(),
    };
    ctx.out.bytes(text.as_bytes())?;
    Ok(())
}

fn text(o: &Map<String, Value>, k: &str) -> String {
    o.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn flag(o: &Map<String, Value>, k: &str) -> bool {
    o.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn count(o: &Map<String, Value>, k: &str) -> u64 {
    o.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// Three listings of the vhost, joined; only the fields drawn are asked for.
async fn fetch(admin: &Admin) -> anyhow::Result<Topology> {
    let v = admin.vhost_segment();
    let vhost = Some(admin.vhost.as_str());
    let exchanges = api_list(
        &admin.api,
        &format!("exchanges/{v}?columns=name,type,durable,auto_delete,internal"),
        vhost,
    )
    .await?;
    let queues = api_list(
        &admin.api,
        &format!("queues/{v}?columns=name,consumers,messages,durable,exclusive,auto_delete"),
        vhost,
    )
    .await?;
    let bindings = api_list(&admin.api, &format!("bindings/{v}"), vhost).await?;

    let mut bindings: Vec<Binding> = bindings
        .iter()
        // The default exchange's implicit bindings say nothing a queue's name does not.
        .filter(|b| !text(b, "source").is_empty())
        .map(|b| Binding {
            source: text(b, "source"),
            destination: text(b, "destination"),
            to_queue: text(b, "destination_type") == "queue",
            routing_key: text(b, "routing_key"),
            arguments: b
                .get("arguments")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    bindings.sort_by(|a, b| {
        (&a.source, !a.to_queue, &a.destination, &a.routing_key).cmp(&(
            &b.source,
            !b.to_queue,
            &b.destination,
            &b.routing_key,
        ))
    });
    let bound = |name: &str| {
        bindings
            .iter()
            .any(|b| b.source == name || (!b.to_queue && b.destination == name))
    };
    let mut exchanges: Vec<Exchange> = exchanges
        .iter()
        .map(|x| Exchange {
            name: text(x, "name"),
            kind: text(x, "type"),
            durable: flag(x, "durable"),
            auto_delete: flag(x, "auto_delete"),
            internal: flag(x, "internal"),
        })
        .filter(|x| !x.name.is_empty() && (!x.name.starts_with("amq.") || bound(&x.name)))
        .collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    let mut queues: Vec<Queue> = queues
        .iter()
        .map(|q| Queue {
            name: text(q, "name"),
            consumers: count(q, "consumers"),
            messages: count(q, "messages"),
            durable: flag(q, "durable"),
            exclusive: flag(q, "exclusive"),
            auto_delete: flag(q, "auto_delete"),
        })
        .collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Topology {
        vhost: admin.vhost.clone(),
        exchanges,
        queues,
        bindings,
    })
}
