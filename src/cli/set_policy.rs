//! `rmq set-policy`: like `rabbitmqctl set_policy`, through the management API's
//! `PUT /api/policies/{vhost}/{name}`.

use super::Ctx;
use super::admin::{Admin, Change, VhostArgs, created};
use crate::client::{ApiMethod, api_segment};
use crate::exit::{self, coded};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

/// Set (create or replace) a policy.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq set-policy ttl '^orders\\.' '{\"message-ttl\":60000}' --apply-to queues\n  rmq set-policy dlx '.*' '{\"dead-letter-exchange\":\"dlx\"}' --priority 1 --vhost staging\n  rmq set-policy cap '^tmp' '{\"max-length\":1000,\"overflow\":\"reject-publish\"}'\n\nPATTERN is a regular expression matched against queue and exchange names; DEFINITION is a\nJSON object of policy keys (message-ttl, expires, max-length, max-length-bytes, overflow,\ndead-letter-exchange, dead-letter-routing-key, delivery-limit, ...), checked by the broker.\nWhere several policies match, the highest --priority wins.\nExit: 0 set; 1 refused (unknown key, bad pattern, unknown vhost); 65 DEFINITION is not a JSON object."
)]
pub(crate) struct SetPolicyArgs {
    /// Policy name.
    name: String,
    /// Regular expression matched against the names of queues and/or exchanges.
    pattern: String,
    /// The settings, as a JSON object, e.g. '{"max-length":1000}'.
    definition: String,
    /// What the policy applies to.
    #[arg(long, value_enum, default_value = "all", value_name = "KIND")]
    apply_to: ApplyTo,
    /// Where several policies match one queue or exchange, the highest priority wins.
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    priority: i64,
    #[command(flatten)]
    at: VhostArgs,
}

/// `--apply-to` values (RabbitMQ 3.10's).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ApplyTo {
    /// Queues only.
    Queues,
    /// Exchanges only.
    Exchanges,
    /// Both.
    All,
}

impl ApplyTo {
    fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }
}

pub(crate) async fn run(args: SetPolicyArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let definition = match serde_json::from_str::<Value>(&args.definition) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return Err(coded(
                exit::DATA_ERR,
                format!(
                    "invalid DEFINITION '{}': expected a JSON object like '{{\"max-length\":1000}}'",
                    args.definition
                ),
            ));
        }
    };
    let admin = Admin::in_vhost(ctx, &args.at)?;
    let body = json!({
        "pattern": args.pattern,
        "definition": definition,
        "priority": args.priority,
        "apply-to": args.apply_to.as_str(),
    });
    let path = format!(
        "policies/{}/{}",
        admin.vhost_segment(),
        api_segment(&args.name)
    );
    let what = format!(
        "cannot set policy '{}' in vhost '{}'",
        args.name, admin.vhost
    );
    let reply = admin.call(ApiMethod::Put, &path, Some(&body)).await?;
    let missing = match reply.status {
        404 => no_policies_api(&admin)
            .await?
            .unwrap_or_else(|| format!("no vhost '{}' (see `rmq list-vhosts`)", admin.vhost)),
        _ => String::new(),
    };
    let status = admin.judge(
        reply,
        &Change {
            what: &what,
            missing: &missing,
            hint: " (check the policy keys, and that PATTERN is a regular expression)",
        },
    )?;
    ctx.out.note(&format!(
        "policy '{}' {} in vhost '{}': pattern '{}' applies {} to {}, priority {}",
        args.name,
        created(status),
        admin.vhost,
        args.pattern,
        definition,
        args.apply_to.as_str(),
        args.priority
    ));
    Ok(())
}

/// After a 404 under `/api/policies/...`: when the broker has no policies API at all,
/// the line that says so (the vhost or the policy exists or not, it cannot tell).
pub(crate) async fn no_policies_api(admin: &Admin) -> anyhow::Result<Option<String>> {
    let reply = admin.call(ApiMethod::Get, "policies", None).await?;
    Ok((reply.status == 404).then(|| {
        format!(
            "the management API at {} has no /api/policies (404): this broker does not serve policies",
            admin.api.base.trim_end_matches('/')
        )
    }))
}
