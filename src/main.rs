use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// ezrouter: one endpoint and one client key in front of many LLM providers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (on the built-in default config unless -c is given).
    Serve {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate a config file: print every problem with its path, exit non-zero if any.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run the mock LLM upstream (OpenAI, Anthropic and Gemini wire formats) standalone.
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// Text deltas per answer.
        #[arg(long, default_value_t = 8)]
        chunks: usize,
        /// Delay between chunks, in milliseconds.
        #[arg(long, default_value_t = 0)]
        chunk_delay_ms: u64,
        /// Delay before the response header, in milliseconds.
        #[arg(long, default_value_t = 0)]
        ttfb_ms: u64,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ezrouter::logger::init();
    match cli.command {
        Command::Serve { config } => {
            let (server, addrs) = match ezrouter::server::build(config) {
                Ok(built) => built,
                Err(e) => {
                    eprintln!("ezrouter: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let admin = addrs
                .admin
                .map(|a| a.to_string())
                .unwrap_or_else(|| "off".into());
            // One line on stdout, so scripts and tests can find the (possibly random) ports.
            println!("ezrouter listening on proxy={} admin={admin}", addrs.proxy);
            server.run(pingora_core::server::RunArgs::default());
            ezrouter::logger::flush();
            ExitCode::SUCCESS
        }
        Command::Check { config } => match ezrouter::config::load(Some(&config)) {
            Ok(loaded) => {
                for note in loaded.notes {
                    println!("note: {note}");
                }
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                eprintln!("{}: {} problem(s)", config.display(), problems.len());
                ExitCode::FAILURE
            }
        },
        Command::MockUpstream {
            listen,
            chunks,
            chunk_delay_ms,
            ttfb_ms,
            threads,
        } => {
            let config = ezrouter_mock::MockConfig {
                chunks,
                chunk_delay: Duration::from_millis(chunk_delay_ms),
                ttfb: Duration::from_millis(ttfb_ms),
            };
            match ezrouter_mock::run_standalone(&listen, config, threads) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mock-upstream: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
