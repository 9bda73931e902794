//! The benchmark's load generator: `measure` one running threadline (and the mock upstream behind it) into a JSON
//! file, then `report` the files of every store as markdown. `bench/run` drives both.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use threadline_bench::cell::Timing;
use threadline_bench::measure::{self, Settings};
use threadline_bench::report::{self, Meta};
use threadline_bench::results::StoreResults;

#[derive(Parser)]
#[command(about = "threadline's load generator (run the benchmark with bench/run)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure one running threadline against the mock upstream it uses; write the figures as JSON.
    Measure(MeasureArgs),
    /// Print the markdown report of measured stores; exits 1 if a request failed or a fidelity or truncation check did.
    Report(ReportArgs),
}

#[derive(Args)]
struct MeasureArgs {
    /// A name for the store: sqlite or postgres.
    #[arg(long)]
    store: String,
    /// threadline's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    threadline: String,
    /// threadline's process id (for its RSS).
    #[arg(long)]
    pid: u32,
    /// The mock upstream's base URL (the one threadline uses, less its /v1).
    #[arg(long)]
    mock: String,
    /// Chain depths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
    depths: Vec<u32>,
    /// The high concurrency.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds each cell is measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds each cell warms up first.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Streams held open for the RSS measurement.
    #[arg(long, default_value_t = 256)]
    streams: usize,
    /// The mock's delay between the chunks of those streams, in milliseconds.
    #[arg(long, default_value_t = 500)]
    stream_chunk_delay_ms: u64,
    /// Tool-output turns of the agent loop (after its opening turn).
    #[arg(long, default_value_t = 25)]
    agent_turns: u32,
    /// Agent loops run at once, besides one at a time.
    #[arg(long, default_value_t = 16)]
    agent_concurrency: usize,
    /// Where to write the figures.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ReportArgs {
    /// The commit measured.
    #[arg(long, default_value = "unknown")]
    commit: String,
    /// When it ran.
    #[arg(long, default_value = "")]
    date: String,
    /// A quick run (targets reported, not enforced).
    #[arg(long)]
    quick: bool,
    /// A line to add under the header; repeatable.
    #[arg(long)]
    note: Vec<String>,
    /// The files `measure` wrote.
    results: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Measure(args) => {
            let settings = Settings {
                store: args.store,
                threadline: args.threadline,
                pid: args.pid,
                mock: args.mock,
                depths: args.depths,
                concurrency: args.concurrency,
                timing: Timing {
                    warmup: Duration::from_secs_f64(args.warmup),
                    duration: Duration::from_secs_f64(args.duration),
                },
                streams: args.streams,
                stream_chunk_delay_ms: args.stream_chunk_delay_ms,
                agent_turns: args.agent_turns,
                agent_concurrency: args.agent_concurrency,
            };
            let results = measure::measure(&settings).await?;
            std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            let mut stores = Vec::new();
            for path in &args.results {
                stores.push(serde_json::from_slice::<StoreResults>(&std::fs::read(path)?)?);
            }
            let meta = Meta { commit: args.commit, date: args.date, quick: args.quick, notes: args.note };
            print!("{}", report::render(&meta, &stores));
            let failed = stores.iter().any(|s| s.errors() > 0 || !s.checks_ok());
            if failed {
                eprintln!(
                    "benchmark failed: a request errored, or a fidelity or truncation check failed (see the report)"
                );
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}
