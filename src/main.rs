//! The `threadline` command: `serve` runs the server, `mcp` serves the MCP tools over stdio, `migrate` prepares the
//! database and exits, `purge` erases expired data (or one tenant's data) and exits.

use std::path::PathBuf;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};
use threadline::clock::Clock;
use threadline::config::{self, Config, Flags, LogFormat};
use threadline::store::Purge;
use tracing_subscriber::EnvFilter;

/// A faster allocator than the system's for a server that allocates many small, short-lived buffers per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "threadline", version, about = "An OpenAI-compatible stateful chat server")]
struct Cli {
    /// A TOML configuration file (see config/threadline.toml). Every setting can also be given as a THREADLINE_*
    /// environment variable.
    #[arg(long, env = "THREADLINE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (applies migrations first).
    Serve(ServeArgs),
    /// Serve the MCP tools over stdin and stdout, for hosts that launch a command (same config as `serve`).
    Mcp(McpArgs),
    /// Apply database migrations and exit.
    Migrate {
        /// Database URL, e.g. sqlite://threadline.db [env: THREADLINE_DATABASE_URL].
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Erase expired data now (as the server does every retention.purge_interval), print what was removed and exit.
    Purge {
        /// Database URL, e.g. sqlite://threadline.db [env: THREADLINE_DATABASE_URL].
        #[arg(long)]
        database_url: Option<String>,
        /// Erase all data of this tenant instead: every response, conversation and item, deleted ones included.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        tenant: Option<String>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on [env: THREADLINE_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Database URL [env: THREADLINE_DATABASE_URL] [default: sqlite://threadline.db].
    #[arg(long)]
    database_url: Option<String>,
    /// The upstream's base URL (e.g. http://127.0.0.1:11434/v1), or `echo` for the built-in offline model
    /// [env: THREADLINE_UPSTREAM_URL].
    #[arg(long = "upstream-url", visible_alias = "upstream")]
    upstream_url: Option<String>,
}

#[derive(Args)]
struct McpArgs {
    /// Database URL [env: THREADLINE_DATABASE_URL] [default: sqlite://threadline.db].
    #[arg(long)]
    database_url: Option<String>,
    /// The upstream's base URL, or `echo` for the built-in offline model [env: THREADLINE_UPSTREAM_URL].
    #[arg(long = "upstream-url", visible_alias = "upstream")]
    upstream_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let flags = Flags {
                config: cli.config,
                listen: args.listen,
                database_url: args.database_url,
                upstream_url: args.upstream_url,
            };
            threadline::serve(start(&flags)?).await
        }
        Command::Mcp(args) => {
            let flags = Flags {
                config: cli.config,
                database_url: args.database_url,
                upstream_url: args.upstream_url,
                ..Flags::default()
            };
            let config = start(&flags)?;
            let store = threadline::open_store(&config, Clock::default()).await?;
            let engine = threadline::build_engine(&config, store.clone()).await?;
            let served = threadline::api::mcp::serve_stdio(engine, &config).await;
            store.close().await;
            served
        }
        Command::Migrate { database_url } => {
            let config = start(&Flags { config: cli.config, database_url, ..Flags::default() })?;
            threadline::open_store(&config, Clock::default()).await?.close().await;
            tracing::info!(database = %config::without_password(&config.database_url), "migrations applied");
            Ok(())
        }
        Command::Purge { database_url, tenant } => {
            let config = start(&Flags { config: cli.config, database_url, ..Flags::default() })?;
            let store = threadline::open_store(&config, Clock::default()).await?;
            let report = store.purge(tenant.as_deref().map_or(Purge::Expired, Purge::Tenant)).await;
            store.close().await;
            println!("{}", report?);
            Ok(())
        }
    }
}

/// Loads the configuration, then sets up logging as it says (a configuration error is returned, and printed, before
/// any logging).
fn start(flags: &Flags) -> anyhow::Result<Config> {
    let config = config::load(flags)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    let logging = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => logging.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => logging.json().flatten_event(true).init(),
    }
    for variable in config::unknown_variables(std::env::vars()) {
        tracing::warn!(%variable, "ignoring an environment variable that names no setting");
    }
    Ok(config)
}
