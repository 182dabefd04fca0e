//! The only module that touches lapin: connect, topology, publish with confirms,
//! consume with prefetch and acks, RPC, and the management API client.
//!
//! - `connect`   URL sources, parsing, a bounded handshake → [`Session`]
//! - `error`     lapin errors → one clear line and an exit code
//! - `topology`  declare / bind / delete / purge
//! - `publish`   windowed publisher confirms
//! - `consume`   consumers, prefetch, ack / nack / reject
//! - `rpc`       request/reply with correlation ids and direct reply-to
//! - `message`   the plain message type and its lossless JSON-lines form
//! - `value`     AMQP field values ⇄ typed JSON
//! - `mgmt`      the management HTTP API (listings, overview, the operator's changes)
//! - `tls`       certificates for amqps:// and https://, shared by lapin and reqwest

mod connect;
mod consume;
mod error;
mod message;
mod mgmt;
mod publish;
mod rpc;
mod tls;
mod topology;
mod value;

pub use connect::{
    ConnectOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_URL, EventFn, EventHook, LinkEvent, Session,
    parse_url, redact,
};
pub use consume::{ConsumeOptions, Delivery, Settle, Settler, Subscription};
pub use message::{Message, Properties};
pub use mgmt::{
    ApiConfig, Method as ApiMethod, Reply as ApiReply, api_port, get as api_get, list as api_list,
    list_queues, request as api_request, segment as api_segment,
};
pub use publish::{PublishOptions, PublishReport, Publisher, Retained};
pub use rpc::{DIRECT_REPLY_TO, RpcClient};
pub use tls::TlsOptions;
pub use topology::{DeclareMode, Destination, ExchangeSpec, QueueInfo, QueueSpec};
pub use value::{from_json as value_from_json, table_from_json, to_json as value_to_json};
