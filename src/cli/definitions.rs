//! `rmq definitions export|import`: RabbitMQ's definitions JSON (users, vhosts,
//! permissions, policies, parameters, exchanges, queues, bindings) through the management
//! API's `GET`/`POST /api/definitions`, from and into RabbitMQ or `rmq serve` alike.

use super::Ctx;
use super::admin::{Admin, ApiArgs, Change};
use crate::client::ApiMethod;
use crate::exit::{self, coded};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Export or import definitions.
#[derive(Debug, Subcommand)]
pub(crate) enum DefinitionsCommand {
    /// Write the broker's definitions (RabbitMQ's JSON) to FILE, or stdout.
    #[command(
        after_help = "Examples:\n  rmq definitions export backup.json\n  rmq definitions export | jq '.queues[].name'\n  rmq --url amqp://guest:guest@prod:5672 definitions export prod.json && rmq definitions import prod.json\n\nUsers are exported with their password hashes, not passwords: keep the file private.\nNeeds a user tagged 'administrator'."
    )]
    Export(ExportArgs),
    /// Create what a definitions file (RabbitMQ's JSON) describes, keeping what exists.
    #[command(
        after_help = "Examples:\n  rmq definitions import backup.json\n  rmq definitions export | rmq --url amqp://guest:guest@other:5672 definitions import -\n\nExisting users are replaced by the file's (hash and tags); an existing queue or exchange\nmust be declared as the file says, or the import stops there with the broker's reason.\nExit: 0 imported; 1 refused by the broker; 65 unreadable or not JSON."
    )]
    Import(ImportArgs),
}

/// `rmq definitions export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Write here (replacing the file) instead of stdout.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

/// `rmq definitions import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The definitions file; `-` reads stdin.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    api: ApiArgs,
}

pub(crate) async fn run(cmd: DefinitionsCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        DefinitionsCommand::Export(a) => export(a, ctx).await,
        DefinitionsCommand::Import(a) => import(a, ctx).await,
    }
}

async fn export(args: ExportArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let admin = Admin::new(ctx, &args.api, None)?;
    let doc = crate::client::api_get(&admin.api, "definitions", None).await?;
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    match &args.file {
        None => ctx.out.bytes(text.as_bytes())?,
        Some(path) => {
            write_replacing(path, text.as_bytes()).map_err(|e| {
                coded(
                    exit::FAILURE,
                    format!("cannot write the definitions to '{}': {e}", path.display()),
                )
            })?;
            ctx.out.note(&format!(
                "definitions exported to '{}': {}",
                path.display(),
                summary(&doc)
            ));
        }
    }
    Ok(())
}

async fn import(args: ImportArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let bytes = if name == "-" {
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut buf)
            .await
            .map(|_| buf)
    } else {
        tokio::fs::read(&args.file).await
    }
    .map_err(|e| coded(exit::DATA_ERR, format!("cannot read '{name}': {e}")))?;
    // Checked here so a truncated file is told apart from a broker's refusal.
    let doc = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Err(coded(
                exit::DATA_ERR,
                format!(
                    "'{name}' is not a definitions file: expected a JSON object (as `rmq definitions export` writes)"
                ),
            ));
        }
        Err(e) => {
            return Err(coded(
                exit::DATA_ERR,
                format!("'{name}' is not valid JSON: {e}"),
            ));
        }
    };
    let admin = Admin::new(ctx, &args.api, None)?;
    let what = format!("cannot import the definitions of '{name}'");
    admin
        .change(
            ApiMethod::Post,
            "definitions",
            Some(&doc),
            &Change {
                what: &what,
                missing: "the management API has no /api/definitions (404)",
                hint: " (what came before that item was imported)",
            },
        )
        .await?;
    ctx.out
        .note(&format!("imported from '{name}': {}", summary(&doc)));
    Ok(())
}

/// "2 users, 1 vhosts, ..." — what a definitions document holds.
fn summary(doc: &Value) -> String {
    [
        "users",
        "vhosts",
        "permissions",
        "policies",
        "exchanges",
        "queues",
        "bindings",
    ]
    .iter()
    .map(|k| {
        let n = doc.get(*k).and_then(Value::as_array).map_or(0, Vec::len);
        format!("{n} {k}")
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// Write through a temporary file and rename it over `path`: an export that fails half-way
/// leaves the previous file, not a truncated one. Readable by its owner only: it holds
/// password hashes.
fn write_replacing(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?
        .write_all(data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
