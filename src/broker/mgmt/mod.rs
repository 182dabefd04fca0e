//! The RabbitMQ-compatible management HTTP API of `rmq serve` (the subset tools use, with
//! RabbitMQ 3.10's JSON field names, status codes and error bodies), plus Prometheus
//! `/metrics`. It reads broker state through accessors and changes it through the same
//! vhost operations AMQP uses (`model::topology`), so both paths see one truth.
//!
//! - `authz`     the caller's vhost access, and its permission as the topology service checks it
//! - `error`     RabbitMQ's `{"error","reason"}` answers and AMQP error mapping
//! - `listing`   paging, filtering, sorting and column selection shared by list endpoints
//! - `json`      field tables and message properties to and from JSON
//! - `stats`     the rate sampler and `message_stats` objects
//! - `overview`  /api/overview, /api/vhosts
//! - `access`    /api/users, /api/permissions, /api/vhost-limits, /api/whoami, vhost create/delete
//! - `definitions` /api/definitions export and import (and `--definitions` at start)
//! - `nodes`     /api/nodes: memory, disk and their alarms
//! - `policies`  /api/policies, /api/operator-policies
//! - `queues`    /api/queues: list, declare, delete, purge, get
//! - `exchanges` /api/exchanges: list, declare, delete, publish
//! - `bindings`  /api/bindings and the per-queue / per-exchange binding lists
//! - `conns`     /api/connections, /api/channels, /api/consumers
//! - `topic_permissions` /api/topic-permissions and the per-user and per-vhost lists
//! - `metrics`   Prometheus text exposition
//! - `https`     the API over TLS: handshakes off the accept path

mod access;
mod authz;
mod bindings;
mod conns;
mod definitions;
mod error;
mod exchanges;
mod https;
mod json;
mod listing;
mod metrics;
mod nodes;
mod overview;
mod policies;
mod queues;
mod stats;
mod topic_permissions;

use super::state::BrokerState;
use crate::broker::model::vhost::VHost;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use base64::Engine;
use error::ApiError;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// RabbitMQ's path for the default exchange (its name is empty).
const DEFAULT_EXCHANGE: &str = "amq.default";

/// The broker's AMQP listeners, as `/api/overview` lists them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listeners {
    /// Plain AMQP.
    pub(crate) amqp: SocketAddr,
    /// amqps, when TLS is configured.
    pub(crate) amqps: Option<SocketAddr>,
}

/// What every handler gets.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    /// The broker whose state is listed and changed.
    broker: Arc<BrokerState>,
    /// The AMQP listeners' addresses, for `listeners`.
    amqp: Listeners,
    /// Our own address, for `listeners`.
    http_addr: SocketAddr,
    /// Whether we speak https (`listeners` says `https` then, as RabbitMQ).
    https: bool,
}

pub(crate) use definitions::import_topology;

/// The authenticated user of a request and its tags.
#[derive(Debug, Clone)]
struct Caller {
    name: String,
    tags: Vec<String>,
}

impl Caller {
    fn is(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Administrators and `monitoring` users list every vhost and connection.
    fn sees_all(&self) -> bool {
        self.is("administrator") || self.is("monitoring")
    }

    /// Users, permissions, vhosts and definitions are the administrator's (RabbitMQ).
    fn require_admin(&self) -> Result<(), ApiError> {
        if self.is("administrator") {
            Ok(())
        } else {
            Err(ApiError::new(
                401,
                "not_authorised",
                "Not administrator user",
            ))
        }
    }
}

/// Serve the API on `listener` (https when `tls` is given) until `shutdown` flips; the
/// rate sampler runs alongside.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    broker: Arc<BrokerState>,
    amqp: Listeners,
    mut shutdown: watch::Receiver<bool>,
) {
    let http_addr = listener.local_addr().unwrap_or(amqp.amqp);
    let api = Api {
        broker: broker.clone(),
        amqp,
        http_addr,
        https: tls.is_some(),
    };
    let sampler = tokio::spawn(stats::run_sampler(broker));
    // RabbitMQ answers `/api/queues/` as `/api/queues` (clients' recovery tests use both);
    // axum routes exact paths, so the slash goes before routing.
    let app = tower::ServiceExt::map_request(router(api), without_trailing_slash);
    let app = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
    let stopped = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    let result = match tls {
        Some(acceptor) => {
            // `tap_io` only so axum's generic ConnectInfo impl applies to our listener.
            let listener = https::Listener::new(listener, acceptor).tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    };
    sampler.abort();
    if let Err(e) = result {
        tracing::error!("management API stopped: {e}");
    }
}

/// The request with its path's trailing slashes removed (`/` itself stays).
fn without_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = match path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        let rebuilt = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(uri) = rebuilt.parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

fn router(api: Api) -> Router {
    let authenticated = Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/whoami", get(access::whoami))
        .route("/api/nodes", get(nodes::nodes))
        .route("/api/nodes/{name}", get(nodes::node))
        .route("/api/vhosts", get(overview::vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(overview::vhost)
                .put(access::put_vhost)
                .delete(access::delete_vhost),
        )
        .route("/api/queues", get(queues::list_all))
        .route("/api/queues/{vhost}", get(queues::list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::show)
                .put(queues::declare)
                .delete(queues::delete),
        )
        .route("/api/queues/{vhost}/{name}/contents", delete(queues::purge))
        .route("/api/queues/{vhost}/{name}/get", post(queues::get_messages))
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(bindings::of_queue),
        )
        .route("/api/exchanges", get(exchanges::list_all))
        .route("/api/exchanges/{vhost}", get(exchanges::list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(exchanges::show)
                .put(exchanges::declare)
                .delete(exchanges::delete),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(exchanges::publish),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(bindings::of_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(bindings::of_destination),
        )
        .route("/api/bindings", get(bindings::list_all))
        .route("/api/bindings/{vhost}", get(bindings::list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}",
            get(bindings::between).post(bindings::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}/{props}",
            get(bindings::show).delete(bindings::delete),
        )
        .route("/api/connections", get(conns::connections))
        .route(
            "/api/connections/{name}",
            get(conns::connection).delete(conns::close_connection),
        )
        .route("/api/connections/{name}/channels", get(conns::channels_of))
        .route("/api/channels", get(conns::channels))
        .route("/api/consumers", get(conns::consumers_all))
        .route("/api/consumers/{vhost}", get(conns::consumers_vhost))
        .route("/api/policies", get(policies::policies))
        .route("/api/policies/{vhost}", get(policies::policies_of))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::policy)
                .put(policies::put_policy)
                .delete(policies::delete_policy),
        )
        .route("/api/operator-policies", get(policies::operator_policies))
        .route(
            "/api/operator-policies/{vhost}",
            get(policies::operator_policies_of),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(policies::operator_policy)
                .put(policies::put_operator_policy)
                .delete(policies::delete_operator_policy),
        )
        .route_layer(middleware::from_fn_with_state(
            api.clone(),
            authz::authorize,
        ))
        .route_layer(middleware::from_fn_with_state(api.clone(), authenticate));
    let admin = Router::new()
        .route("/api/users", get(access::users))
        .route(
            "/api/users/{user}",
            get(access::user)
                .put(access::put_user)
                .delete(access::delete_user),
        )
        .route(
            "/api/users/{user}/permissions",
            get(access::user_permissions),
        )
        .route("/api/permissions", get(access::permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(access::permission)
                .put(access::put_permission)
                .delete(access::delete_permission),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(access::vhost_permissions),
        )
        .route("/api/vhost-limits", get(access::vhost_limits))
        .route("/api/vhost-limits/{vhost}", get(access::vhost_limits_of))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(access::put_vhost_limit).delete(access::delete_vhost_limit),
        )
        .route("/api/topic-permissions", get(topic_permissions::list))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(topic_permissions::show)
                .put(topic_permissions::put)
                .delete(topic_permissions::delete),
        )
        .route(
            "/api/topic-permissions/{vhost}/{user}/{exchange}",
            get(topic_permissions::show_exchange).delete(topic_permissions::delete_exchange),
        )
        .route(
            "/api/users/{user}/topic-permissions",
            get(topic_permissions::of_user),
        )
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(topic_permissions::of_vhost),
        )
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import),
        )
        .route_layer(middleware::from_fn(require_admin))
        .route_layer(middleware::from_fn_with_state(api.clone(), authenticate));
    Router::new()
        .merge(authenticated)
        .merge(admin)
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { ApiError::not_found() })
        .with_state(api)
}

/// HTTP basic auth with the broker's users; `guest` from loopback only (RabbitMQ's
/// `loopback_users`). No credentials: 401 with an empty body and a challenge, as RabbitMQ.
async fn authenticate(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some(creds) = creds else {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"RabbitMQ Management\"",
            )],
        )
            .into_response();
    };
    let (user, pass) = creds.split_once(':').unwrap_or((creds.as_str(), ""));
    let Some(user) = api.broker.auth.login(user, pass) else {
        return ApiError::new(401, "not_authorized", "Login failed").into_response();
    };
    if user.name == "guest" && !peer.ip().is_loopback() {
        return ApiError::new(401, "not_authorized", "User can only log in via localhost")
            .into_response();
    }
    let caller = Caller {
        name: user.name,
        tags: user.tags,
    };
    if !["administrator", "monitoring", "policymaker", "management"]
        .iter()
        .any(|t| caller.is(t))
    {
        return ApiError::new(401, "not_authorised", "Not management user").into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The gate of the administrator-only routes (runs after `authenticate`).
async fn require_admin(req: Request, next: Next) -> Response {
    let allowed = req.extensions().get::<Caller>().map(Caller::require_admin);
    match allowed {
        Some(Ok(())) => next.run(req).await,
        Some(Err(e)) => e.into_response(),
        None => ApiError::new(401, "not_authorised", "Login failed").into_response(),
    }
}

impl Api {
    fn vhost(&self, name: &str) -> Result<Arc<VHost>, ApiError> {
        self.broker.vhost(name).ok_or_else(ApiError::not_found)
    }

    /// Every vhost, by name: `/metrics` and a definitions export (an administrator's).
    fn all_vhosts(&self) -> Vec<Arc<VHost>> {
        let mut v: Vec<_> = self
            .broker
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every vhost `caller` may see, by name.
    fn vhosts(&self, caller: &Caller) -> Vec<Arc<VHost>> {
        let mut v = self.all_vhosts();
        v.retain(|v| {
            caller.sees_all() || self.broker.auth.permission(&v.name, &caller.name).is_some()
        });
        v
    }

    /// One vhost, or every vhost `caller` sees when `None` (the `/api/x` vs
    /// `/api/x/{vhost}` lists).
    fn scope(&self, caller: &Caller, vhost: Option<&str>) -> Result<Vec<Arc<VHost>>, ApiError> {
        match vhost {
            Some(v) => Ok(vec![self.vhost(v)?]),
            None => Ok(self.vhosts(caller)),
        }
    }

    /// The open connections `caller` may see (its own, unless it sees all).
    fn connections(&self, caller: &Caller) -> Vec<Arc<crate::broker::amqp::registry::ConnEntry>> {
        let mut all = self.broker.registry.connections();
        all.retain(|c| caller.sees_all() || c.user == caller.name);
        all
    }

    /// RabbitMQ's node name: we have one node.
    fn node(&self) -> String {
        node_name()
    }
}

/// `rabbit@<hostname>`-like, so tools that group by node see one.
pub(crate) fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("rmq@{host}")
}

/// The exchange name a path segment means (`amq.default` is the default exchange).
fn exchange_name(segment: &str) -> &str {
    if segment == DEFAULT_EXCHANGE {
        ""
    } else {
        segment
    }
}

/// A request body as JSON: RabbitMQ answers a body that does not parse with
/// `{"error":"bad_request","reason":"not_json"}`. An empty body counts as `{}`.
fn body_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    match serde_json::from_slice(body) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        _ => Err(ApiError::bad_request("not_json")),
    }
}

/// A boolean field of a request body; RabbitMQ also takes "true"/"false" strings.
fn body_bool(v: &serde_json::Value, key: &str, default: bool) -> Result<bool, ApiError> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(serde_json::Value::String(s)) if s == "true" => Ok(true),
        Some(serde_json::Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be a boolean, got {other}"
        ))),
    }
}
