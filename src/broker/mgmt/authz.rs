//! What an authenticated user may see and do through the API, as RabbitMQ's
//! management plugin decides it: vhost-scoped routes need a permission in that vhost
//! (`User not authorised to access virtual host`); changes need the same configure /
//! write / read permission the AMQP operation would, checked by the topology service
//! itself through the caller's `Grant` (`Access refused.`, administrators included);
//! lists show administrators and `monitoring` users everything, others the vhosts they
//! have a permission in and their own connections.

use super::error::ApiError;
use super::{Api, Caller};
use crate::broker::access::grant::{Checked, Grant};
use crate::broker::access::{Access, AuthDb, Resource};
use crate::broker::error::AmqpResult;
use crate::broker::model::topology::Permit;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

fn vhost_refused() -> ApiError {
    ApiError::new(
        401,
        "not_authorised",
        "User not authorised to access virtual host",
    )
}

/// RabbitMQ's API answer to a refused resource or topic permission.
pub(super) fn access_refused() -> ApiError {
    ApiError::new(401, "not_authorised", "Access refused.")
}

/// The caller's permission in one vhost, as the topology service checks it. A refusal
/// is remembered so the adapter answers it as RabbitMQ's API does (401), while the
/// operation's other errors keep their AMQP mapping.
#[derive(Debug)]
pub(super) struct CallerPermit<'a> {
    grant: Grant,
    db: &'a AuthDb,
    refused: bool,
}

impl<'a> CallerPermit<'a> {
    pub(super) fn new(api: &'a Api, caller: &Caller, vhost: &str) -> CallerPermit<'a> {
        CallerPermit {
            grant: Grant::new(&api.broker.auth, &caller.name, vhost),
            db: &api.broker.auth,
            refused: false,
        }
    }

    /// Run one topology operation as the caller.
    pub(super) fn run<T>(
        &mut self,
        op: impl FnOnce(&mut dyn Permit) -> AmqpResult<T>,
    ) -> Result<T, ApiError> {
        self.refused = false;
        let result = op(self);
        result.map_err(|e| {
            if self.refused {
                access_refused()
            } else {
                e.into()
            }
        })
    }
}

impl Permit for CallerPermit<'_> {
    fn check(&mut self, access: Access, kind: Resource, name: &str) -> AmqpResult {
        let mut checked = Checked {
            grant: &mut self.grant,
            db: self.db,
        };
        checked
            .check(access, kind, name)
            .inspect_err(|_| self.refused = true)
    }

    fn check_topic(&mut self, access: Access, exchange: &str, key: &str) -> AmqpResult {
        let mut checked = Checked {
            grant: &mut self.grant,
            db: self.db,
        };
        checked
            .check_topic(access, exchange, key)
            .inspect_err(|_| self.refused = true)
    }
}

/// Routes whose `{vhost}` needs a permission in it (the vhost routes only to read).
fn vhost_scoped(route: &str, method: &Method) -> bool {
    [
        "/api/queues/",
        "/api/exchanges/",
        "/api/bindings/",
        "/api/consumers/",
    ]
    .iter()
    .any(|p| route.starts_with(p))
        || (route == "/api/vhosts/{vhost}" && method == Method::GET)
}

/// The middleware (after `authenticate`): a permission in the route's vhost. The vhost
/// comes from axum's own path captures (decoded), never from re-reading the URI.
pub(super) async fn authorize(State(api): State<Api>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return ApiError::new(401, "not_authorised", "Login failed").into_response();
    };
    let scoped = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|m| vhost_scoped(m.as_str(), req.method()));
    if !scoped {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let vhost = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params
            .iter()
            .find(|(k, _)| *k == "vhost")
            .map(|(_, v)| v.to_string()),
        Err(rejection) => return rejection.into_response(),
    };
    // A vhost that does not exist is the handler's 404, as in RabbitMQ.
    if let Some(vhost) = vhost
        && api.broker.vhost(&vhost).is_some()
        && api.broker.auth.permission(&vhost, &caller.name).is_none()
        && !caller.is("administrator")
    {
        return vhost_refused().into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_routes_are_scoped_for_reading_only() {
        assert!(vhost_scoped("/api/queues/{vhost}/{name}", &Method::PUT));
        assert!(vhost_scoped("/api/vhosts/{vhost}", &Method::GET));
        assert!(!vhost_scoped("/api/vhosts/{vhost}", &Method::PUT));
        assert!(!vhost_scoped("/api/policies/{vhost}", &Method::GET));
    }
}
