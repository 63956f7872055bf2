//! The `strangler` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strangler::admin::client::{AdminClient, ClientError};
use strangler::admin::render;
use strangler::{api, config};

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
    /// Config file [default: conf/strangler.toml in the working directory when it is there,
    /// else /etc/strangler/strangler.toml, where the Debian package puts it].
    #[arg(
        short = 'c',
        long = "config",
        env = "STRANGLER_CONFIG",
        default_value_os_t = default_config(),
        hide_default_value = true
    )]
    path: PathBuf,
}

/// `conf/strangler.toml` (a checkout, a demo) when it is there, else the installed one.
fn default_config() -> PathBuf {
    let local = PathBuf::from("conf/strangler.toml");
    let installed = PathBuf::from("/etc/strangler/strangler.toml");
    if local.exists() || !installed.exists() {
        local
    } else {
        installed
    }
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
        /// Also connect to every upstream address and etcd endpoint; any that does not answer
        /// fails the check.
        #[arg(long)]
        probe: bool,
    },
    /// Every route with the last minute's figures per side and its rollout state.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Set a route's weight (percent on new); written back to the config file.
    Weight {
        /// Route name.
        route: String,
        /// Percent of requests sent to new, 0..=100 in steps of 0.01.
        percent: f64,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Reload the config file now.
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Pause, resume or abort a route's progressive rollout.
    Rollout {
        /// Route name.
        route: String,
        action: RolloutAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a route's recent shadow mismatches, side by side.
    Diffs {
        /// Route name.
        route: String,
        /// Records to show, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Send a route's kept mismatching requests to both sides again and compare with today's rules.
    Replay {
        /// Route name.
        route: String,
        /// Only requests of this endpoint, as the report names it ("GET /orders/{id}").
        #[arg(long)]
        endpoint: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print each kept request as a curl command (redacted) instead of sending it.
        #[arg(long, conflicts_with = "json")]
        curl: bool,
        /// The proxy's URL for --curl; default: the first server.listen address of the config.
        #[arg(long, value_name = "URL")]
        base: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// A fleet's routing document in etcd (with [cluster] in the config).
    Cluster {
        #[command(subcommand)]
        action: ClusterCommand,
    },
    /// The cutover report of a route: per endpoint, comparisons, findings and a verdict.
    Report {
        /// Route name.
        route: String,
        /// Print it as Markdown, for a cutover ticket.
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// Start the evidence afresh first (after new was fixed and redeployed); learned noise stays.
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Write the man pages (strangler(1) and one per command, strangler-weight(1), ...) into
    /// DIR; the Debian package ships them.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// The webhooks of [[notify]] in the config.
    Notify {
        #[command(subcommand)]
        action: NotifyCommand,
    },
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// POST a sample notification to every [[notify]] target (whatever events it takes), once
    /// each; exit 1 when any did not take it.
    Test {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Validate the upstreams and routes of ROUTES (default: the config file) as every instance
    /// will, and upload them to etcd; every instance applies them at once.
    Push {
        /// A file with [upstreams.*] and [[routes]] (anything else in it is left out).
        routes: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Write the routing document in etcd to a file (or standard output).
    Pull {
        /// Where to write it (atomically); default: standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RolloutAction {
    /// Stop at the current step (the weight stays).
    Pause,
    /// Continue from the step at or below the current weight.
    Resume,
    /// Weight 0 and stop.
    Abort,
}

impl From<RolloutAction> for api::RolloutAction {
    fn from(a: RolloutAction) -> api::RolloutAction {
        match a {
            RolloutAction::Pause => api::RolloutAction::Pause,
            RolloutAction::Resume => api::RolloutAction::Resume,
            RolloutAction::Abort => api::RolloutAction::Abort,
        }
    }
}

/// How CLI commands reach a running strangler.
#[derive(clap::Args)]
struct AdminArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Admin API URL; default: admin.listen from the config.
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// Bearer token; default: $STRANGLER_ADMIN_TOKEN, else admin.token from the config.
    #[arg(long)]
    token: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

impl AdminArgs {
    fn client(&self) -> Result<AdminClient, ClientError> {
        AdminClient::new(&self.config.path, self.admin.as_deref(), self.token.as_deref())
    }

    /// Print the answer (as JSON or through `human`), or the error as one line; exit 1 on error.
    fn show<T: serde::Serialize>(&self, answer: Result<T, ClientError>, human: fn(&T) -> String) -> ExitCode {
        match answer {
            Ok(v) if self.json => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(v) => {
                print!("{}", human(&v));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }
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
        Command::Check { config, probe } => check(&config.path, probe),
        Command::Status { admin } => {
            let answer = admin.client().and_then(|c| c.get::<api::Routes>("/routes"));
            let in_fleet = answer.as_ref().is_ok_and(|r| r.fleet);
            let totals = answer.as_ref().map(render::fleet_totals).unwrap_or_default();
            let code = admin.show(answer, render::status);
            // In a fleet, then the fleet's totals, every instance and the revision it serves.
            if in_fleet && !admin.json {
                print!("{totals}");
                match admin.client().and_then(|c| c.get::<api::ClusterView>("/cluster")) {
                    Ok(fleet) => print!("{}", render::fleet(&fleet)),
                    Err(e) => eprintln!("fleet: {e}"),
                }
            }
            code
        }
        Command::Weight { route, percent, admin } => {
            let body = api::WeightRequest { percent };
            let answer = admin.client().and_then(|c| c.put(&format!("/routes/{route}/weight"), &body));
            admin.show(answer, render::weight)
        }
        Command::Reload { admin } => {
            let answer = admin.client().and_then(|c| c.post("/reload"));
            admin.show(answer, render::reload)
        }
        Command::Rollout { route, action, admin } => {
            let action = api::RolloutAction::from(action);
            let answer = admin.client().and_then(|c| c.post(&format!("/routes/{route}/rollout/{}", action.as_str())));
            admin.show(answer, render::rollout)
        }
        Command::Diffs { route, limit, admin } => {
            let answer = admin.client().and_then(|c| c.get(&format!("/routes/{route}/diffs?limit={limit}")));
            admin.show(answer, render::diffs)
        }
        Command::Replay { route, endpoint, limit, curl, base, admin } => {
            if curl {
                let mut query = format!("limit={limit}");
                if let Some(e) = &endpoint {
                    let encoded = percent_encoding::utf8_percent_encode(e, percent_encoding::NON_ALPHANUMERIC);
                    query.push_str(&format!("&endpoint={encoded}"));
                }
                let answer =
                    admin.client().and_then(|c| c.get::<api::Replays>(&format!("/routes/{route}/replays?{query}")));
                let base = base
                    .or_else(|| strangler::admin::client::proxy_url(&admin.config.path))
                    .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
                return match answer {
                    Ok(r) => {
                        print!("{}", render::curl(&r, &base));
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            let ask = api::ReplayRequest { endpoint, limit: Some(limit) };
            let answer = admin.client().and_then(|c| c.post_json(&format!("/routes/{route}/replay"), &ask));
            admin.show(answer, render::replayed)
        }
        Command::Cluster { action } => cluster(action),
        Command::Notify { action: NotifyCommand::Test { config } } => notify_test(&config.path),
        Command::Man { dir } => man(&dir),
        Command::Report { route, markdown, reset, admin } => {
            let answer = admin.client().and_then(|c| {
                if reset {
                    c.post(&format!("/routes/{route}/report/reset"))
                } else {
                    c.get(&format!("/routes/{route}/report?limit=1000"))
                }
            });
            admin.show(answer, if markdown { render::report_markdown } else { render::report })
        }
    }
}

fn cluster(action: ClusterCommand) -> ExitCode {
    use strangler::cluster::cli::{self, CliError};
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = |e: CliError| {
        match e {
            CliError::Invalid(e) => {
                eprintln!("{e}");
                eprintln!("{} problem(s) found; nothing was uploaded", e.problems.len());
            }
            CliError::Other(e) => eprintln!("error: {e}"),
        }
        ExitCode::FAILURE
    };
    match action {
        ClusterCommand::Push { routes, config } => match runtime.block_on(cli::push(&config.path, routes.as_deref())) {
            Ok(said) => {
                println!("{said}");
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
        ClusterCommand::Pull { output, config } => match runtime.block_on(cli::pull(&config.path)) {
            Ok((text, revision)) => match output {
                None => {
                    print!("{text}");
                    eprintln!("revision {revision}");
                    ExitCode::SUCCESS
                }
                Some(path) => match config::persist::write_atomic(&path, &text, config::persist::Contents::Secrets) {
                    Ok(()) => {
                        println!("wrote revision {revision} to {}", path.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => failed(CliError::Other(e.to_string())),
                },
            },
            Err(e) => failed(e),
        },
    }
}

/// Print every probe; whether every address answered.
fn probed(cfg: &config::Config) -> bool {
    let probes = strangler::probe::probe(cfg);
    let dead = probes.iter().filter(|p| p.result.is_err()).count();
    for p in &probes {
        match &p.result {
            Ok(took) => println!("  probe {} {}: answers ({:.1} ms)", p.what, p.address, took.as_secs_f64() * 1000.0),
            Err(why) => eprintln!("probe {} {}: does not answer: {why}", p.what, p.address),
        }
    }
    if dead > 0 {
        eprintln!("{dead} of {} address(es) do not answer", probes.len());
    }
    dead == 0
}

fn check(path: &std::path::Path, probe: bool) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            println!("{}: ok, {} route(s)", path.display(), cfg.routes.len());
            if let Some(c) = &cfg.cluster {
                println!(
                    "  in a fleet: the routes come from etcd {}/config (`strangler cluster pull` shows them)",
                    c.prefix
                );
            }
            for r in &cfg.routes {
                let hosts = if r.hosts.is_empty() {
                    "*".to_string()
                } else {
                    r.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",")
                };
                let shadow = match &r.shadow {
                    Some(s) if s.enabled => format!("{}@{}%", s.target.as_str(), s.sample),
                    Some(_) => "disabled".to_string(),
                    None => "none".to_string(),
                };
                let rollout = r.rollout.as_ref().map_or("none".to_string(), |ro| {
                    let steps: Vec<String> = ro.steps.iter().map(|s| s.to_string()).collect();
                    format!("{}%/{}", steps.join(","), humantime::format_duration(ro.hold))
                });
                println!(
                    "  {}: hosts={} prefix={} weight={}% legacy={} ({} addr) new={} ({} addr) sticky={} shadow={shadow} \
                     rollout={rollout} failover={}",
                    r.name,
                    hosts,
                    r.path_prefix,
                    r.weight_percent(),
                    r.legacy.name,
                    r.legacy.addrs.len(),
                    r.new.name,
                    r.new.addrs.len(),
                    r.sticky.as_ref().map_or("none".to_string(), |s| s.describe()),
                    r.failover,
                );
            }
            // Named as problems are (file, key, value, fix), but not failing the check.
            let warnings = config::ConfigError { file: path.to_path_buf(), problems: cfg.warnings() };
            for line in warnings.to_string().lines() {
                println!("warning: {line}");
            }
            if probe && !probed(&cfg) {
                return ExitCode::FAILURE;
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

/// `strangler notify test`.
fn notify_test(path: &std::path::Path) -> ExitCode {
    let cfg = match config::load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if cfg.notify.is_empty() {
        eprintln!("error: {} has no [[notify]] target to test", path.display());
        return ExitCode::FAILURE;
    }
    let instance = cfg.cluster.as_ref().map_or_else(config::host_name, |c| c.instance.clone());
    let mut failed = 0;
    for (name, outcome, took) in strangler::notifications::test_all(&cfg.notify, &instance) {
        let ms = took.as_millis();
        match outcome {
            strangler::notifications::Attempt::Delivered(code) => {
                println!("ok      {name}: answered {code} in {ms} ms")
            }
            strangler::notifications::Attempt::Retry(why) | strangler::notifications::Attempt::Refused(why) => {
                failed += 1;
                println!("FAILED  {name}: {why} ({ms} ms)");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} target(s) did not take the notification", cfg.notify.len());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `strangler man DIR`: the man pages, from the same definitions `--help` prints.
fn man(dir: &std::path::Path) -> ExitCode {
    use clap::CommandFactory;
    match std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(Cli::command(), dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the man pages into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
