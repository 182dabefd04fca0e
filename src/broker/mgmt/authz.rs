//! What an authenticated user may see and do through the API, as RabbitMQ's
//! management plugin decides it: vhost-scoped paths need a permission in that vhost
//! (`User not authorised to access virtual host`); changes need the same configure /
//! write / read permission the AMQP operation would (`Access refused.`, administrators
//! included); lists show administrators and `monitoring` users everything, others the
//! vhosts they have a permission in and their own connections.

use super::error::ApiError;
use super::{Api, Caller};
use crate::broker::access::Access;
use crate::broker::error::AmqpResult;
use crate::broker::model::exchange::{Exchange, ExchangeKind};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

tokio::task_local! {
    /// The caller of the request being served (set around the handler).
    static CALLER: Caller;
}

fn vhost_refused() -> ApiError {
    ApiError::new(
        401,
        "not_authorised",
        "User not authorised to access virtual host",
    )
}

fn access_refused() -> ApiError {
    ApiError::new(401, "not_authorised", "Access refused.")
}

/// Whether the request's caller sees `vhost` in lists (true outside a request).
pub(super) fn sees_vhost(api: &Api, vhost: &str) -> bool {
    CALLER
        .try_with(|c| c.sees_all() || api.broker.auth.permission(vhost, &c.name).is_some())
        .unwrap_or(true)
}

/// Whether the request's caller sees connections of `user` (true outside a request).
pub(super) fn sees_user(user: &str) -> bool {
    CALLER
        .try_with(|c| c.sees_all() || c.name == user)
        .unwrap_or(true)
}

/// The caller's topic permissions on `exchange` for `key`, when it is a topic exchange:
/// the API publishes and binds as its caller, as RabbitMQ's does (over its own AMQP
/// channel, with the same checks).
pub(super) fn permit_topic(
    api: &Api,
    caller: &Caller,
    vhost: &str,
    exchange: &Exchange,
    access: Access,
    key: &str,
) -> AmqpResult<()> {
    if exchange.kind != ExchangeKind::Topic {
        return Ok(());
    }
    api.broker.auth.topic_rules(vhost, &caller.name).check(
        access,
        &exchange.name,
        key,
        &caller.name,
        vhost,
    )
}

/// `%2F` and friends in a path segment.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The permission checks a changing request needs, as (access, resource name): the
/// patterns apply to queue and exchange names alike.
fn checks(method: &Method, kind: &str, rest: &[String]) -> Vec<(Access, String)> {
    match (kind, rest, method.as_str()) {
        ("queues" | "exchanges", [name], "PUT" | "DELETE") => {
            vec![(Access::Configure, name.clone())]
        }
        ("queues", [name, action], "DELETE" | "POST")
            if action == "contents" || action == "get" =>
        {
            vec![(Access::Read, name.clone())]
        }
        ("exchanges", [name, action], "POST") if action == "publish" => {
            vec![(Access::Write, name.clone())]
        }
        ("bindings", [e, source, _, dest, ..], "POST" | "DELETE") if e == "e" => vec![
            (Access::Write, dest.clone()),
            (Access::Read, source.clone()),
        ],
        _ => Vec::new(),
    }
}

/// The middleware (after `authenticate`): vhost access and resource permissions for
/// vhost-scoped paths, then the handler with the caller in scope for list filtering.
pub(super) async fn authorize(State(api): State<Api>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return ApiError::new(401, "not_authorised", "Login failed").into_response();
    };
    let segments: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    if let [api_root, kind, vhost, rest @ ..] = segments.as_slice()
        && api_root == "api"
        && matches!(
            kind.as_str(),
            "queues" | "exchanges" | "bindings" | "consumers" | "vhosts"
        )
        && !(kind == "vhosts" && req.method() != Method::GET)
        // A vhost that does not exist is the handler's 404, as in RabbitMQ.
        && api.broker.vhost(vhost).is_some()
    {
        let permission = api.broker.auth.permission(vhost, &caller.name);
        if permission.is_none() && !caller.is("administrator") {
            return vhost_refused().into_response();
        }
        for (access, name) in checks(req.method(), kind, rest) {
            let allowed = permission.as_ref().is_some_and(|p| p.allows(access, &name));
            if !allowed {
                return access_refused().into_response();
            }
        }
    }
    CALLER.scope(caller, next.run(req)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_vhost_segments() {
        assert_eq!(decode("%2F"), "/");
        assert_eq!(decode("a%20b"), "a b");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }

    #[test]
    fn changes_need_rabbitmqs_permissions() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            checks(&Method::PUT, "queues", &s(&["q"])),
            vec![(Access::Configure, "q".to_string())]
        );
        assert_eq!(
            checks(&Method::POST, "exchanges", &s(&["amq.default", "publish"])),
            vec![(Access::Write, "amq.default".to_string())]
        );
        assert_eq!(
            checks(&Method::POST, "bindings", &s(&["e", "x", "q", "q1"])),
            vec![
                (Access::Write, "q1".to_string()),
                (Access::Read, "x".to_string())
            ]
        );
        assert!(checks(&Method::GET, "queues", &s(&["q"])).is_empty());
    }
}
