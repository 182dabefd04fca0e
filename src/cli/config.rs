//! `rmq config show|path`: the connection settings rmq would use, and where each came
//! from (flag > environment > profile > default), with passwords masked.

use crate::config::{Settings, default_config_path, process_env};
use crate::output::Output;
use clap::Subcommand;
use serde_json::Value;

/// What to show.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// The resolved settings and their sources (passwords shown as ***).
    #[command(
        after_help = "Examples:\n  rmq config show                          # what `rmq send` etc. would use now\n  rmq --profile prod config show           # with a profile of the config file\n  RMQ_URL=amqp://u:p@h/%2F rmq config show  # the environment beats the profile\n  rmq config show --output json\n\nThe config file (TOML) is --config PATH, else RMQ_CONFIG, else $XDG_CONFIG_HOME/rmq/config.toml,\nelse ~/.config/rmq/config.toml:\n\n  default_profile = \"local\"\n  [profiles.local]\n  url = \"amqp://guest:guest@localhost:5672/%2F\"\n  [profiles.prod]\n  url = \"amqp://app:secret@mq.example.com:5672\"\n  vhost = \"orders\"\n  api_url = \"http://mq.example.com:15672\"\n  tls_ca_cert = \"/etc/rmq/ca.pem\"      # tls_cert, tls_key likewise\n\nThe profile is --profile NAME, else RMQ_PROFILE, else default_profile. Each setting comes\nfrom its flag, else its environment variable (RMQ_URL, AMQP_URL, RMQ_API_URL), else the\nprofile, else the default."
    )]
    Show,
    /// The config file rmq reads (whether or not it exists).
    #[command(after_help = "Examples:\n  rmq config path\n  $EDITOR \"$(rmq config path)\"")]
    Path,
}

pub(crate) fn run(cmd: ConfigCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Show => {
            let cols = ["setting", "value", "source"].map(String::from);
            let rows: Vec<Vec<Value>> = settings
                .rows()
                .into_iter()
                .map(|(k, v, s)| vec![Value::from(k), Value::from(v), Value::from(s)])
                .collect();
            out.rows(&cols, &rows)?;
        }
        ConfigCommand::Path => {
            let path = settings
                .config_path
                .as_ref()
                .map(|p| p.value.clone())
                .or_else(|| default_config_path(&process_env));
            match path {
                Some(p) => {
                    out.line(&p.display().to_string())?;
                    if !settings.config_loaded {
                        out.note("(it does not exist yet)");
                    }
                }
                None => {
                    out.note("no config file: neither RMQ_CONFIG, XDG_CONFIG_HOME nor HOME is set")
                }
            }
        }
    }
    Ok(())
}
