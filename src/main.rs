//! The `strangler` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strangler::config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "strangler", version, about = "Route-by-route legacy -> new migration proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Config file.
    #[arg(short = 'c', long = "config", env = "STRANGLER_CONFIG", default_value = "conf/strangler.toml")]
    path: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Take over the listeners of a running strangler (send it SIGQUIT).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file: a summary per route, or every problem found (exit 1).
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, upgrade } => match strangler::server::run(&config.path, upgrade) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Check { config } => check(&config.path),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            println!("{}: ok, {} route(s)", path.display(), cfg.routes.len());
            for r in &cfg.routes {
                let hosts = if r.hosts.is_empty() {
                    "*".to_string()
                } else {
                    r.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",")
                };
                println!(
                    "  {}: hosts={} prefix={} weight={}% legacy={} ({} addr) new={} ({} addr) sticky={}",
                    r.name,
                    hosts,
                    r.path_prefix,
                    r.weight_percent(),
                    r.legacy.name,
                    r.legacy.addrs.len(),
                    r.new.name,
                    r.new.addrs.len(),
                    r.sticky.as_ref().map_or("none".to_string(), |s| s.describe()),
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{} problem(s) found", e.problems.len());
            ExitCode::FAILURE
        }
    }
}
