//! `rmq add-user`: like `rabbitmqctl add_user`, through the management API's
//! `PUT /api/users/{name}`.

use super::Ctx;
use super::admin::{Admin, ApiArgs, Change};
use crate::client::{ApiMethod, api_segment};
use crate::exit::{self, coded};
use clap::Args;
use serde_json::json;
use tokio::io::AsyncReadExt;

/// Create a user.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq add-user ops s3cret --tags administrator\n  printf '%s\\n' \"$PASS\" | rmq add-user app --password-stdin --tags management\n  rmq add-user app --password-stdin < secret.txt && rmq set-permissions app '^app\\.' '.*' '.*'\n\nA new user has no permissions: grant them with `rmq set-permissions`. A password given as an\nargument is visible to other local users (ps, shell history): prefer --password-stdin.\nTags: administrator, monitoring, policymaker, management (or your own).\nExit: 0 created; 1 the user exists already; 65 no password on stdin."
)]
pub(crate) struct AddUserArgs {
    /// User name.
    name: String,
    /// Password (prefer --password-stdin).
    #[arg(
        required_unless_present = "password_stdin",
        conflicts_with = "password_stdin"
    )]
    password: Option<String>,
    /// Read the password from stdin (its first line, without the line break).
    #[arg(long)]
    password_stdin: bool,
    /// Tags, comma-separated (administrator, monitoring, policymaker, management, ...).
    #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
    tags: Vec<String>,
    #[command(flatten)]
    api: ApiArgs,
}

pub(crate) async fn run(args: AddUserArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let password = match args.password {
        Some(p) => p,
        None => read_password().await?,
    };
    let admin = Admin::new(ctx, &args.api, None)?;
    let path = format!("users/{}", api_segment(&args.name));
    let what = format!("cannot add user '{}'", args.name);
    // A PUT would silently replace an existing user's password and tags: refuse, as
    // `rabbitmqctl add_user` does.
    if admin.call(ApiMethod::Get, &path, None).await?.status == 200 {
        return Err(coded(
            exit::FAILURE,
            format!(
                "{what}: it exists already (remove it first with `rmq delete-user {}`)",
                args.name
            ),
        ));
    }
    let tags: Vec<&str> = args
        .tags
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    // Tags as RabbitMQ 3.10's API documents them: one comma-separated string.
    let body = json!({ "password": password, "tags": tags.join(",") });
    admin
        .change(
            ApiMethod::Put,
            &path,
            Some(&body),
            &Change {
                what: &what,
                missing: "the management API has no /api/users (404)",
                hint: "",
            },
        )
        .await?;
    ctx.out.note(&format!(
        "user '{}' added (tags: {}); grant it permissions with `rmq set-permissions {} '.*' '.*' '.*'`",
        args.name,
        if tags.is_empty() {
            "none".to_string()
        } else {
            tags.join(", ")
        },
        args.name
    ));
    Ok(())
}

/// The first line of stdin: a password piped in (`printf '%s\n' "$PASS" | ...`).
async fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    tokio::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .await
        .map_err(|e| {
            coded(
                exit::DATA_ERR,
                format!("cannot read the password from stdin: {e}"),
            )
        })?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        return Err(coded(
            exit::DATA_ERR,
            "--password-stdin: stdin held no password (pipe one in: printf '%s\\n' \"$PASS\" | rmq add-user NAME --password-stdin)",
        ));
    }
    Ok(line)
}
