//! What the operator commands share (users, vhosts, permissions, policies, definitions,
//! connections): the management API's address, the vhost they act on, and one way of
//! turning the API's answers into a line and an exit code.

use super::Ctx;
use crate::client::{ApiConfig, ApiMethod, ApiReply, api_request, api_segment};
use crate::exit::{self, coded};
use clap::Args;
use serde_json::Value;

/// `--api-url`, for the commands that act through the management API.
#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// Management API base URL (default: the broker URL's host, port ?api_port= of the URL or
    /// 15672, same credentials, checked to serve that broker).
    #[arg(long, env = "RMQ_API_URL", value_name = "URL")]
    pub(crate) api_url: Option<String>,
}

/// `--vhost` and `--api-url`, for the commands that act in one vhost.
#[derive(Debug, Args)]
pub(crate) struct VhostArgs {
    /// Virtual host (default: the URL's).
    #[arg(long, short = 'p', value_name = "VHOST")]
    pub(crate) vhost: Option<String>,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

/// The management API, ready for changes.
pub(crate) struct Admin {
    /// Where the API is and who we are there.
    pub(crate) api: ApiConfig,
    /// The vhost the command acts in: `--vhost`, else the broker URL's.
    pub(crate) vhost: String,
}

/// What a change is, for the one line an error prints.
pub(crate) struct Change<'a> {
    /// What was asked, as the start of an error: "cannot delete user 'u'".
    pub(crate) what: &'a str,
    /// What a 404 means here: "no user 'u'".
    pub(crate) missing: &'a str,
    /// What to do about a refusal (400): "(are the patterns regular expressions?)".
    pub(crate) hint: &'a str,
}

impl Admin {
    /// The API from `--api-url` and its fallbacks; the vhost from `vhost` or the URL.
    pub(crate) fn new(ctx: &Ctx, api: &ApiArgs, vhost: Option<&str>) -> anyhow::Result<Admin> {
        let (api, url_vhost) = super::listing::api_config(ctx, api.api_url.clone())?;
        Ok(Admin {
            api,
            vhost: vhost.map_or(url_vhost, str::to_string),
        })
    }

    /// The same, from `--vhost` and `--api-url`.
    pub(crate) fn in_vhost(ctx: &Ctx, args: &VhostArgs) -> anyhow::Result<Admin> {
        Admin::new(ctx, &args.api, args.vhost.as_deref())
    }

    /// The vhost as a path segment (`/` is `%2F`).
    pub(crate) fn vhost_segment(&self) -> String {
        api_segment(&self.vhost)
    }

    /// `method /api/path`, whatever the answer (unreachable and 401 aside).
    pub(crate) async fn call(
        &self,
        method: ApiMethod,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<ApiReply> {
        api_request(&self.api, method, path, body, None).await
    }

    /// Make a change: the status on success (201 created, 204 changed or already so),
    /// else one line saying what was refused and why (exit 1).
    pub(crate) async fn change(
        &self,
        method: ApiMethod,
        path: &str,
        body: Option<&Value>,
        change: &Change<'_>,
    ) -> anyhow::Result<u16> {
        let reply = self.call(method, path, body).await?;
        self.judge(reply, change)
    }

    /// A reply's status on success, else the error line.
    pub(crate) fn judge(&self, reply: ApiReply, change: &Change<'_>) -> anyhow::Result<u16> {
        let Change {
            what,
            missing,
            hint,
        } = change;
        match reply.status {
            200..=299 => Ok(reply.status),
            404 => Err(coded(exit::FAILURE, format!("{what}: {missing}"))),
            400 => Err(coded(
                exit::FAILURE,
                format!("{what}: the broker refused it: {}{hint}", reply.reason()),
            )),
            status => Err(coded(
                exit::FAILURE,
                format!(
                    "{what}: the management API at {} answered {status}: {}",
                    self.api.base.trim_end_matches('/'),
                    reply.reason()
                ),
            )),
        }
    }
}

/// "created" or "updated", from a PUT's status (RabbitMQ: 201 or 204).
pub(crate) fn created(status: u16) -> &'static str {
    if status == 201 { "created" } else { "updated" }
}
