//! Declaring, binding, deleting and purging queues and exchanges.
//!
//! A failed passive declare closes the channel (spec §1.7.2.1 "passive"), so every
//! existence check runs on a throw-away channel.

use super::connect::Session;
use super::error::{amqp_reply, describe};
use super::value::table_from_json;
use crate::exit::{self, coded};
use lapin::ExchangeKind;
use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use serde_json::{Map, Value};

/// How a queue should exist.
#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    /// Queue name; empty asks the broker for a server-named `amq.gen-…` queue.
    pub name: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Owned by this connection and deleted with it.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// `x-` arguments (x-message-ttl, x-queue-type, …) in the typed JSON form.
    pub arguments: Map<String, Value>,
}

/// What to do about the queue before using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeclareMode {
    /// Use it if it exists (whatever its settings), else create it from the spec.
    #[default]
    Ensure,
    /// Only check that it exists (error if not).
    Passive,
    /// Assume it exists; do not talk to the broker about it.
    Skip,
}

/// An exchange to declare.
#[derive(Debug, Clone)]
pub struct ExchangeSpec {
    /// Exchange name.
    pub name: String,
    /// direct, fanout, topic, headers (or a plugin's type).
    pub kind: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Only reachable through exchange-to-exchange bindings.
    pub internal: bool,
    /// `x-` arguments such as `alternate-exchange`.
    pub arguments: Map<String, Value>,
}

/// The broker's view of a queue after a declare.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    /// Its name (the generated one for a server-named queue).
    pub name: String,
    /// Ready messages.
    pub messages: u32,
    /// Consumers attached.
    pub consumers: u32,
}

/// Where a binding leads.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A queue.
    Queue(String),
    /// Another exchange (RabbitMQ's exchange-to-exchange bindings).
    Exchange(String),
}

fn args(map: &Map<String, Value>) -> anyhow::Result<FieldTable> {
    table_from_json(map).map_err(|e| coded(exit::DATA_ERR, format!("bad arguments: {e:#}")))
}

fn kind(name: &str) -> ExchangeKind {
    match name {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_string()),
    }
}

impl Session {
    /// Declare a queue (creating or checking it) on `chan`.
    pub(crate) async fn declare_queue_on(
        &self,
        chan: &lapin::Channel,
        spec: &QueueSpec,
        passive: bool,
    ) -> anyhow::Result<QueueInfo> {
        let opts = QueueDeclareOptions {
            passive,
            durable: spec.durable,
            exclusive: spec.exclusive,
            auto_delete: spec.auto_delete,
            nowait: false,
        };
        let what = if passive {
            format!("queue '{}'", spec.name)
        } else {
            format!("cannot declare queue '{}'", spec.name)
        };
        let q = chan
            .queue_declare(spec.name.as_str().into(), opts, args(&spec.arguments)?)
            .await
            .map_err(|e| describe(&what, e))?;
        Ok(QueueInfo {
            name: q.name().as_str().to_string(),
            messages: q.message_count(),
            consumers: q.consumer_count(),
        })
    }

    /// Declare a queue on its own channel.
    pub async fn declare_queue(&self, spec: &QueueSpec) -> anyhow::Result<QueueInfo> {
        let chan = self.raw_channel().await?;
        let info = self.declare_queue_on(&chan, spec, false).await;
        let _ = chan.close(200, "ok".into()).await;
        info
    }

    /// Does the queue exist? (`None` when it does not.)
    pub async fn queue_exists(&self, name: &str) -> anyhow::Result<Option<QueueInfo>> {
        let chan = self.raw_channel().await?;
        let spec = QueueSpec {
            name: name.to_string(),
            ..QueueSpec::default()
        };
        let opts = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match chan
            .queue_declare(name.into(), opts, FieldTable::default())
            .await
        {
            Ok(q) => {
                let _ = chan.close(200, "ok".into()).await;
                Ok(Some(QueueInfo {
                    name: spec.name,
                    messages: q.message_count(),
                    consumers: q.consumer_count(),
                }))
            }
            Err(e) if amqp_reply(&e).is_some_and(|(code, _)| code == 404) => Ok(None),
            Err(e) => Err(describe(&format!("queue '{name}'"), e)),
        }
    }

    /// Apply a [`DeclareMode`] to a queue before publishing to or consuming from it.
    pub async fn prepare_queue(&self, spec: &QueueSpec, mode: DeclareMode) -> anyhow::Result<()> {
        match mode {
            DeclareMode::Skip => Ok(()),
            DeclareMode::Passive => match self.queue_exists(&spec.name).await? {
                Some(_) => Ok(()),
                None => Err(coded(
                    exit::FAILURE,
                    format!(
                        "queue '{}' does not exist in vhost '{}' (declare it, or drop --passive)",
                        spec.name,
                        self.vhost()
                    ),
                )),
            },
            DeclareMode::Ensure => {
                // Declare first, check second: a new queue is created and an equivalent one
                // confirmed without a channel error, where a passive probe made the broker
                // log a 404 for every new queue (RabbitMQ logs each channel exception).
                // Only a queue that exists with other settings (406) or that the user may
                // not configure (403: read/write permissions suffice to use it) costs one
                // refused declare; it is then used as it is, so `rmq send q` works
                // whatever flags created `q`.
                if spec.name.is_empty() {
                    self.declare_queue(spec).await?;
                    return Ok(());
                }
                let chan = self.raw_channel().await?;
                let opts = QueueDeclareOptions {
                    passive: false,
                    durable: spec.durable,
                    exclusive: spec.exclusive,
                    auto_delete: spec.auto_delete,
                    nowait: false,
                };
                let declared = chan
                    .queue_declare(spec.name.as_str().into(), opts, args(&spec.arguments)?)
                    .await;
                match declared {
                    Ok(_) => {
                        let _ = chan.close(200, "ok".into()).await;
                        Ok(())
                    }
                    Err(e) => {
                        let code = amqp_reply(&e).map(|(code, _)| code);
                        if matches!(code, Some(403 | 406))
                            && self.queue_exists(&spec.name).await?.is_some()
                        {
                            return Ok(());
                        }
                        Err(describe(
                            &format!("cannot declare queue '{}'", spec.name),
                            e,
                        ))
                    }
                }
            }
        }
    }

    /// Does the exchange exist?
    pub async fn exchange_exists(&self, name: &str) -> anyhow::Result<bool> {
        if name.is_empty() {
            return Ok(true);
        }
        let chan = self.raw_channel().await?;
        let opts = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        match chan
            .exchange_declare(
                name.into(),
                ExchangeKind::Direct,
                opts,
                FieldTable::default(),
            )
            .await
        {
            Ok(()) => {
                let _ = chan.close(200, "ok".into()).await;
                Ok(true)
            }
            Err(e) if amqp_reply(&e).is_some_and(|(code, _)| code == 404) => Ok(false),
            Err(e) => Err(describe(&format!("exchange '{name}'"), e)),
        }
    }

    /// Declare an exchange.
    pub async fn declare_exchange(&self, spec: &ExchangeSpec) -> anyhow::Result<()> {
        let chan = self.raw_channel().await?;
        let opts = ExchangeDeclareOptions {
            passive: false,
            durable: spec.durable,
            auto_delete: spec.auto_delete,
            internal: spec.internal,
            nowait: false,
        };
        chan.exchange_declare(
            spec.name.as_str().into(),
            kind(&spec.kind),
            opts,
            args(&spec.arguments)?,
        )
        .await
        .map_err(|e| describe(&format!("cannot declare exchange '{}'", spec.name), e))?;
        let _ = chan.close(200, "ok".into()).await;
        Ok(())
    }

    /// Declare the exchange unless it exists already (the tutorials' publishers and
    /// consumers both declare it; an existing one is used whatever its flags).
    pub async fn ensure_exchange(&self, spec: &ExchangeSpec) -> anyhow::Result<()> {
        if !self.exchange_exists(&spec.name).await? {
            self.declare_exchange(spec).await?;
        }
        Ok(())
    }

    /// Bind (or, with `unbind`, remove the binding of) `dest` to `source` with `key`.
    pub async fn bind(
        &self,
        source: &str,
        dest: &Destination,
        key: &str,
        arguments: &Map<String, Value>,
        unbind: bool,
    ) -> anyhow::Result<()> {
        let chan = self.raw_channel().await?;
        let a = args(arguments)?;
        let verb = if unbind { "unbind" } else { "bind" };
        let res = match (dest, unbind) {
            (Destination::Queue(q), false) => {
                chan.queue_bind(
                    q.as_str().into(),
                    source.into(),
                    key.into(),
                    QueueBindOptions::default(),
                    a,
                )
                .await
            }
            (Destination::Queue(q), true) => {
                chan.queue_unbind(q.as_str().into(), source.into(), key.into(), a)
                    .await
            }
            (Destination::Exchange(x), false) => {
                chan.exchange_bind(
                    x.as_str().into(),
                    source.into(),
                    key.into(),
                    ExchangeBindOptions::default(),
                    a,
                )
                .await
            }
            (Destination::Exchange(x), true) => {
                chan.exchange_unbind(
                    x.as_str().into(),
                    source.into(),
                    key.into(),
                    ExchangeUnbindOptions::default(),
                    a,
                )
                .await
            }
        };
        let target = match dest {
            Destination::Queue(q) => format!("queue '{q}'"),
            Destination::Exchange(x) => format!("exchange '{x}'"),
        };
        res.map_err(|e| {
            describe(
                &format!("cannot {verb} {target} from exchange '{source}'"),
                e,
            )
        })?;
        let _ = chan.close(200, "ok".into()).await;
        Ok(())
    }

    /// Delete a queue; returns the number of messages it held.
    pub async fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> anyhow::Result<u32> {
        let chan = self.raw_channel().await?;
        let opts = QueueDeleteOptions {
            if_unused,
            if_empty,
            nowait: false,
        };
        let n = chan
            .queue_delete(name.into(), opts)
            .await
            .map_err(|e| describe(&format!("cannot delete queue '{name}'"), e))?;
        let _ = chan.close(200, "ok".into()).await;
        Ok(n)
    }

    /// Delete an exchange.
    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> anyhow::Result<()> {
        let chan = self.raw_channel().await?;
        let opts = ExchangeDeleteOptions {
            if_unused,
            nowait: false,
        };
        chan.exchange_delete(name.into(), opts)
            .await
            .map_err(|e| describe(&format!("cannot delete exchange '{name}'"), e))?;
        let _ = chan.close(200, "ok".into()).await;
        Ok(())
    }

    /// Purge a queue's ready messages; returns how many went.
    pub async fn purge_queue(&self, name: &str) -> anyhow::Result<u32> {
        let chan = self.raw_channel().await?;
        let n = chan
            .queue_purge(name.into(), QueuePurgeOptions::default())
            .await
            .map_err(|e| describe(&format!("cannot purge queue '{name}'"), e))?;
        let _ = chan.close(200, "ok".into()).await;
        Ok(n)
    }
}
