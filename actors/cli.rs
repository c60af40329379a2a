//! The command line (SPEC §2): `horde-hydrator [--config FILE] run | once
//! [--dump DIR] | admin hydrate [CATEGORY…] | invalidate CATEGORY | clear | status`.

use crate::admin::AdminCommand;
use clap::{Parser, Subcommand};
use horde_hydrator::category::Category;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "horde-hydrator",
    version,
    about = "Keeps the AI Horde model-reference analytics caches (deletion risk, category statistics) warm in Redis",
    after_help = "Settings: --config FILE (default ./config.toml; a missing default file means built-in defaults), \
                  overridden by environment variables HORDE_HYDRATOR__<SECTION>__<KEY>. Logs: RUST_LOG (default info)."
)]
pub struct Cli {
    /// The TOML settings file.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGINT or SIGTERM.
    Run,
    /// Run one full cycle now, print a summary and exit (non-zero when any source or entry failed).
    Once {
        /// Also write every entry to DIR/<key after the prefix, ':' as '__'>.json (replacing an earlier dump's entries).
        #[arg(long, value_name = "DIR")]
        dump: Option<PathBuf>,
    },
    /// Send an admin command to the running daemon over Redis pub/sub and print its reply.
    #[command(subcommand)]
    Admin(AdminCli),
    /// Load and validate the settings, print them (secrets redacted) with where
    /// each value came from (default, file, environment); exit 2 on an error.
    CheckConfig,
}

#[derive(Debug, Subcommand)]
pub enum AdminCli {
    /// Run a cycle now (or right after the running one); all configured categories when none given.
    Hydrate {
        #[arg(value_name = "CATEGORY", value_parser = parse_category)]
        categories: Vec<Category>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Drop a category's entries (memory and Redis) and re-hydrate it.
    Invalidate {
        #[arg(value_name = "CATEGORY", value_parser = parse_category)]
        category: Category,
        #[command(flatten)]
        wait: Wait,
    },
    /// Drop every entry (memory and Redis).
    Clear {
        #[command(flatten)]
        wait: Wait,
    },
    /// Print the daemon's state.
    Status {
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Wait {
    /// Seconds to wait for the daemon's reply.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub timeout: f64,
}

impl AdminCli {
    pub fn wait(&self) -> Wait {
        match self {
            AdminCli::Hydrate { wait, .. }
            | AdminCli::Invalidate { wait, .. }
            | AdminCli::Clear { wait }
            | AdminCli::Status { wait } => *wait,
        }
    }

    /// The command published on `P:admin`.
    pub fn to_command(&self) -> AdminCommand {
        match self {
            AdminCli::Hydrate { categories, .. } => AdminCommand::Hydrate { categories: categories.clone() },
            AdminCli::Invalidate { category, .. } => AdminCommand::Invalidate { category: *category },
            AdminCli::Clear { .. } => AdminCommand::Clear,
            AdminCli::Status { .. } => AdminCommand::Status,
        }
    }
}

fn parse_category(s: &str) -> Result<Category, String> {
    s.parse::<Category>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_command_lines() {
        let cli = Cli::try_parse_from(["horde-hydrator", "--config", "x.toml", "once", "--dump", "/tmp/o"])
            .unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        assert!(matches!(cli.command, Command::Once { dump: Some(ref d) } if d == &PathBuf::from("/tmp/o")));

        let cli = Cli::try_parse_from([
            "horde-hydrator",
            "admin",
            "hydrate",
            "text_generation",
            "image_generation",
        ])
        .unwrap();
        let Command::Admin(a) = cli.command else { panic!() };
        assert_eq!(
            serde_json::to_string(&a.to_command()).unwrap(),
            r#"{"command":"hydrate","categories":["text_generation","image_generation"]}"#
        );

        let cli = Cli::try_parse_from(["horde-hydrator", "admin", "invalidate", "image_generation"]).unwrap();
        let Command::Admin(a) = cli.command else { panic!() };
        assert_eq!(
            serde_json::to_string(&a.to_command()).unwrap(),
            r#"{"command":"invalidate","category":"image_generation"}"#
        );
        assert!(Cli::try_parse_from(["horde-hydrator", "admin", "invalidate", "clip"]).is_err());
        assert!(Cli::try_parse_from(["horde-hydrator", "run"]).is_ok());
    }
}
