//! `connector-host`: run a connector component for one tenant from the command line, test
//! its configuration, serve many tenants (of any connectors) on schedules, or watch the whole
//! product work against the built-in Entra connector's simulated Graph.
//!
//! The CLI ships the built-in connectors (`builtin-connectors`); a tenant picks one with
//! `[tenant] connector = "entra-id"` (the default) or `"okta"`, or names a component file.
//!
//! Exit codes: 0 success; 2 configuration or secret (a wrong endpoint, for `check`); 3
//! credentials refused; 4 permission missing (or a failed `check` probe nothing else
//! explains); 5 the upstream service failed; 6 host or sandbox error (or the event sink);
//! 7 (`check`) a request the host's egress policy refused.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[path = "cli/status.rs"]
mod status;
use connector_host::error::ConnectorErrorKind;
use connector_host::serve::{DeployError, Summary};
use connector_host::{
    Components, ConnectorChoice, RunError, Runtime, RuntimeLimits, TenantConfig, TenantRun,
};
#[cfg(feature = "simulation")]
use graph_emulator::{Emulator, EmulatorConfig, Tenant};

#[path = "cli/check.rs"]
mod check;
#[cfg(feature = "simulation")]
#[path = "cli/demo_okta.rs"]
mod demo_okta;
#[cfg(feature = "simulation")]
#[path = "cli/emulator.rs"]
mod emulator;
#[cfg(feature = "simulation")]
#[path = "cli/emulator_okta.rs"]
mod emulator_okta;
#[path = "cli/output.rs"]
mod output;
#[path = "cli/progress.rs"]
mod progress;
use output::{note, print_summary, report_json};

/// Exit code of a configuration or secret that cannot be used.
const EXIT_CONFIG: i32 = 2;
/// Exit code of `check` finding a wrong endpoint setting (a 404, or an answer that is not the API): a configuration error.
const EXIT_ENDPOINT: i32 = EXIT_CONFIG;
/// Exit code of credentials the provider refused (e.g. a wrong client secret), or a token its API refused.
const EXIT_CREDENTIALS: i32 = 3;
/// Exit code of a missing permission (or a failed `check` probe nothing else explains).
const EXIT_PERMISSION: i32 = 4;
/// Exit code of a failure of the upstream service (the provider's API the connector reads).
const EXIT_UPSTREAM: i32 = 5;
/// Exit code of a host or sandbox failure.
const EXIT_HOST: i32 = 6;
/// Exit code of `check` finding that the event sink cannot take events (unreachable, its credential refused, a file that cannot be written), as a run's sink failure exits.
const EXIT_SINK: i32 = EXIT_HOST;
/// Exit code of `check` finding a request the host's egress policy refused: fix `[egress] allow` (or a secret's `hosts`).
const EXIT_EGRESS: i32 = 7;

/// The exit code of a failed run: the one place the library's typed errors become numbers.
fn exit_code(e: &RunError) -> i32 {
    match e {
        RunError::Config { .. } | RunError::Secret { .. } => EXIT_CONFIG,
        RunError::Connector { kind, .. } => match kind {
            ConnectorErrorKind::Config => EXIT_CONFIG,
            ConnectorErrorKind::Auth => EXIT_CREDENTIALS,
            ConnectorErrorKind::Permission => EXIT_PERMISSION,
            ConnectorErrorKind::Upstream => EXIT_UPSTREAM,
            ConnectorErrorKind::Host => EXIT_HOST,
        },
        RunError::Trap { .. }
        | RunError::Limit { .. }
        | RunError::Timeout { .. }
        | RunError::Host { .. } => EXIT_HOST,
    }
}

/// The exit code of a deployment that could not start.
fn deploy_exit_code(e: &DeployError) -> i32 {
    match e {
        DeployError::Config(_) => EXIT_CONFIG,
        DeployError::Host(_) => EXIT_HOST,
    }
}

/// The exit code after serving: in once mode 0 when every tenant succeeded, else 1; when
/// serving until a signal, 0 (failed runs are the metrics' business, and a supervisor must
/// not restart a host it asked to stop).
fn serve_exit_code(summary: &Summary) -> i32 {
    if !summary.once || summary.all_succeeded() {
        0
    } else {
        1
    }
}

#[derive(Parser)]
#[command(
    name = "connector-host",
    version,
    about = "Runs sandboxed inventory connectors (WebAssembly components) for identity-provider tenants.",
    long_about = "Runs sandboxed inventory connectors (WebAssembly components) for identity-provider tenants.\n\n\
A tenant file picks its connector: `[tenant] connector = \"entra-id\"` (built in, the default: Microsoft\n\
Entra ID users as OCSF 1.8.0 'User Inventory Info' (5003) events), `connector = \"okta\"` (built in: Okta\n\
users, the same class) or the path of a component file.\n\
Start with `connector-host demo` (or `demo --connector okta`): it runs the real component against a\n\
simulated tenant on 127.0.0.1."
)]
struct Cli {
    /// Log format on stderr: text or json.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log level filter (e.g. warn, info, debug; RUST_LOG syntax). The default shows
    /// warnings, errors and, when stderr is not a terminal, a progress line at most every
    /// 10 s (target `progress`); `--log warn` hides the progress lines.
    #[arg(
        long,
        global = true,
        default_value = output::DEFAULT_LOG,
        env = "CONNECTOR_HOST_LOG"
    )]
    log: String,
    /// Folder of the compiled-component cache (compiled once, reused across restarts).
    /// Default: $XDG_CACHE_HOME/connector-host or ~/.cache/connector-host. It must be yours
    /// and not writable by others; otherwise the component is compiled in memory, with a warning.
    #[arg(long, global = true, env = "CONNECTOR_HOST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the component in memory on every start instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(subcommand)]
    command: Command,
}

/// The exit codes and the fix for each, at the end of the `--help` of the CLI and of every
/// subcommand; README.md "Exit codes and what to do" is the same table with more words
/// (host/tests/cli.rs checks that both list the same codes).
const EXIT_CODES_HELP: &str = "\
Exit codes (README.md, \"Exit codes and what to do\"):
  0  success (check: every probe passed)
  1  serve --once: a tenant's run failed; its error line is in the log and `status`
  2  configuration or secret (check: also a wrong endpoint path): the line names the file,
     key and fix
  3  credentials refused: create a new secret, write it to the secret file
  4  permission missing: grant the permission the line names (Entra: admin consent)
  5  the upstream service failed: usually transient; the next run resumes
  6  host, sandbox or sink: a trap or limit, the sink refused or unreachable, the database
     down; the line names which
  7  check: the egress policy refused a request: add the origin to [egress] allow";

/// The cache folder chosen on the command line (None: no cache).
static CACHE_DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// `$XDG_CACHE_HOME/connector-host` or `$HOME/.cache/connector-host`; a variable that is
/// empty or relative is ignored (a relative path would put the cache in the working folder).
fn default_cache_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("connector-host"))
}

#[derive(Subcommand)]
enum Command {
    /// Run one sync for the tenant described by a tenant file.
    Run {
        /// The tenant file (TOML): see README.md, "Configuration".
        #[arg(long, short)]
        config: PathBuf,
        /// Print the run report as one JSON object on stdout instead of a text summary.
        #[arg(long)]
        json: bool,
    },
    /// Test a tenant file: the connector's own check (credentials, a probe of each permission
    /// it declares) and a probe of the sink, changing nothing and delivering nothing; each
    /// failure is named with its fix (egress refused 7, wrong endpoint 2, credentials refused
    /// 3, sink 6, permission missing 4, upstream 5).
    Check {
        /// The tenant file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a built-in connector against its simulation on 127.0.0.1: the Entra connector
    /// against the Graph emulator (default), or the Okta connector against the Okta emulator
    /// (`--connector okta`).
    #[cfg(feature = "simulation")]
    Demo {
        /// The connector to run: entra-id (a simulated Entra ID tenant) or okta (a simulated
        /// Okta org, read with an API token).
        #[arg(long, default_value = "entra-id", value_parser = ["entra-id", "okta"])]
        connector: String,
        /// Users in the simulated tenant.
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// Seed of the simulated tenant (same seed, same users).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Folder for the checkpoint database and the events file (emptied of both first).
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
        /// After the first run, create this many users and run again (an incremental run;
        /// entra-id only).
        #[arg(long, default_value_t = 0)]
        then_add: usize,
        /// Simulate a tenant without an Entra ID P1/P2 licence (no signInActivity; entra-id
        /// only).
        #[arg(long)]
        no_premium: bool,
    },
    /// Print what a connector component declares (name, permissions, config keys).
    Describe {
        /// A built-in connector's name or a component file (.wasm).
        #[arg(long, alias = "component", default_value = ConnectorChoice::DEFAULT)]
        connector: String,
    },
    /// Run many tenants on their schedules, with Prometheus metrics and graceful shutdown.
    Serve {
        /// The tenants file (TOML): see README.md, "Many tenants: serve".
        #[arg(long, short)]
        tenants: PathBuf,
        /// Run every tenant once, then exit: 0 if all succeeded, else 1 (overrides [serve] once).
        #[arg(long)]
        once: bool,
        /// Address of /metrics and /healthz, e.g. 127.0.0.1:9465 (overrides [serve] listen;
        /// for a second `serve` on one machine).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Serve the built-in Entra connector's simulated Graph (or, with `--connector okta`,
    /// the Okta connector's simulated org) on 127.0.0.1 until Ctrl-C, and write a ready
    /// tenant file pointing at it (`run` and `check` take it as it is).
    #[cfg(feature = "simulation")]
    Emulator {
        /// Whose simulation: entra-id (the Graph emulator) or okta (the Okta emulator).
        #[arg(long, default_value = "entra-id", value_parser = ["entra-id", "okta"])]
        connector: String,
        /// Users in the simulated tenant.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// Seed of the simulated tenant (same seed, same users).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The Graph server's (okta: the org's) port (0: a free one, printed). The login
        /// server takes the next port unless --login-port says otherwise.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The login server's port (default: --port + 1, or a free one with --port 0;
        /// entra-id only).
        #[arg(long)]
        login_port: Option<u16>,
        /// Folder for the tenant file (tenant.toml), its secret file (client_secret), and the
        /// checkpoint database and events file a run of it writes.
        #[arg(long, default_value = "emulator-out")]
        out: PathBuf,
    },
    /// Where each tenant stands: last run and outcome (with the error), next due, progress,
    /// last full walk, last sign-in sweep, lease holder. Reads the stores; writes nothing.
    Status {
        /// A tenants file (TOML): its tenants, from their stores or the fleet's database.
        #[arg(
            long,
            short,
            conflicts_with = "config",
            required_unless_present = "config"
        )]
        tenants: Option<PathBuf>,
        /// One tenant file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print one JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() {
    let cli = parse_cli();
    init_logging(&cli.log, &cli.log_format);
    // A panic inside a run becomes that run's one-line `host` error (exit 6), not a report.
    connector_host::runtime::panics::install_hook();
    let cache = if cli.no_cache {
        None
    } else {
        let dir = cli.cache_dir.clone().or_else(default_cache_dir);
        if dir.is_none() {
            tracing::warn!(
                "no folder for the component cache (neither XDG_CACHE_HOME nor HOME is an \
                 absolute path); compiling the component in memory; pass --cache-dir DIR, \
                 or --no-cache to silence this"
            );
        }
        dir
    };
    let _ = CACHE_DIR.set(cache);
    let code = match cli.command {
        Command::Run { config, json } => cmd_run(&config, json).await,
        Command::Check { config } => cmd_check(&config).await,
        #[cfg(feature = "simulation")]
        Command::Demo {
            connector,
            users,
            seed,
            out,
            then_add,
            no_premium,
        } => match connector.as_str() {
            "okta" if then_add > 0 || no_premium => fail(
                "--then-add and --no-premium apply to --connector entra-id only; remove them",
                EXIT_CONFIG,
            ),
            "okta" => demo_okta::demo(users, seed, &out).await,
            _ => cmd_demo(users, seed, &out, then_add, !no_premium).await,
        },
        Command::Describe { connector } => {
            match ConnectorChoice::parse(&connector, Path::new("")) {
                Ok(choice) => cmd_describe(&choice).await,
                Err(e) => fail(format!("--connector: {e}"), EXIT_CONFIG),
            }
        }
        Command::Serve {
            tenants,
            once,
            listen,
        } => cmd_serve(&tenants, once, listen).await,
        #[cfg(feature = "simulation")]
        Command::Emulator {
            connector,
            users,
            seed,
            port,
            login_port,
            out,
        } if connector == "okta" => match login_port {
            Some(_) => fail(
                "--login-port applies to --connector entra-id only (an Okta org serves its token endpoint itself); remove it",
                EXIT_CONFIG,
            ),
            None => match emulator_okta::serve(users, seed, port, out).await {
                Ok(()) => 0,
                Err((message, code)) => fail(message, code),
            },
        },
        #[cfg(feature = "simulation")]
        Command::Emulator {
            users,
            seed,
            port,
            login_port,
            out,
            ..
        } => {
            let options = emulator::EmulatorOptions {
                users,
                seed,
                port,
                login_port,
                out,
            };
            match emulator::serve(options).await {
                Ok(()) => 0,
                Err((message, code)) => fail(message, code),
            }
        }
        Command::Status {
            tenants,
            config,
            json,
        } => status::cmd_status(tenants.as_deref(), config.as_deref(), json).await,
    };
    std::process::exit(code);
}

/// The command line, with [`EXIT_CODES_HELP`] at the end of every `--help`.
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command()
        .after_help(EXIT_CODES_HELP)
        .mut_subcommands(|c| c.after_help(EXIT_CODES_HELP));
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

fn init_logging(filter: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(output::DEFAULT_LOG));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        output::set_json_logs();
        builder.json().init();
    } else {
        // Text from outside (the upstream service, the connector) is escaped in every field; colours only
        // on a terminal, so a log file holds no escape sequence at all, and never under NO_COLOR.
        use std::io::IsTerminal;
        builder
            .with_ansi(colour_wanted(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .fmt_fields(connector_host::doors::log::EscapedFields)
            .init();
    }
}

/// Whether log lines are coloured: only on a terminal, and not when `NO_COLOR` is set to a
/// non-empty value (the no-color.org convention).
fn colour_wanted(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `text` as the terminal may show it: control characters, line separators and bidi
/// controls escaped (it may quote the upstream service or the connector).
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    connector_host::doors::log::escape_control(text)
}

fn fail(message: impl std::fmt::Display, code: i32) -> i32 {
    output::error_line(&message.to_string(), code);
    code
}

/// How the CLI builds every runtime: default limits, the cache folder of the command line.
fn runtime_options() -> connector_host::RuntimeOptions {
    connector_host::RuntimeOptions {
        limits: RuntimeLimits::default(),
        cache_dir: CACHE_DIR.get().cloned().flatten(),
        ..connector_host::RuntimeOptions::default()
    }
}

/// The runtime of `choice`'s component (a built-in connector or a file). `Err` is one line
/// and its exit code: 2 for an unknown built-in name or a component of another contract
/// version, 6 for a component file that cannot be read or compiled (as before connectors
/// had names).
async fn runtime_for(choice: &ConnectorChoice) -> Result<Runtime, (String, i32)> {
    let bytes = connector_host::components::component_bytes(choice).map_err(|e| {
        let code = match choice {
            ConnectorChoice::Builtin(_) => EXIT_CONFIG,
            ConnectorChoice::File(_) => EXIT_HOST,
        };
        (e, code)
    })?;
    Runtime::with_options(&bytes, runtime_options())
        .await
        .map_err(|e| {
            let code = if e
                .downcast_ref::<connector_host::runtime::contract::ContractError>()
                .is_some()
            {
                EXIT_CONFIG
            } else {
                EXIT_HOST
            };
            (format!("cannot load the {choice}: {e:#}"), code)
        })
}

/// Loads a tenant file, its secrets, store and sink, and the runtime for its component;
/// on failure, prints the one-line error and returns the exit code. For `check`
/// (`check_only`), nothing is opened for writing: see [`TenantRun::for_check`].
async fn load_tenant(config: &Path, check_only: bool) -> Result<(TenantRun, Runtime), i32> {
    let cfg = TenantConfig::load(config).map_err(|e| fail(e, EXIT_CONFIG))?;
    // The events file may not be the tenant file itself (nor its database or secrets, which
    // opening the run checks).
    connector_host::files::identity::check_tenant_events(&cfg, &[(config, "the tenant file")])
        .map_err(|message| {
            let e = RunError::Config {
                tenant: cfg.key.clone(),
                message,
            };
            fail(&e, exit_code(&e))
        })?;
    // The secrets first: a bad one is the operator's to fix, and is said before the
    // component is even loaded (loading it reserves the instance pool's memory); a key or
    // [config] value holding one is refused before the connector (whose configuration
    // errors quote values) sees it.
    let secrets =
        connector_host::assembly::tenant_secrets(&cfg).map_err(|e| fail(&e, exit_code(&e)))?;
    connector_host::assembly::screen_config(&cfg, &secrets).map_err(|e| fail(&e, exit_code(&e)))?;
    let rt = runtime_for(&cfg.component)
        .await
        .map_err(|(e, code)| fail(e, code))?;
    let cfg = rt
        .resolve_egress(cfg)
        .await
        .map_err(|e| fail(&e, exit_code(&e)))?;
    let run = if check_only {
        TenantRun::for_check(&cfg)
    } else {
        TenantRun::open(&cfg).await
    }
    .map_err(|e| fail(&e, exit_code(&e)))?;
    Ok((run, rt))
}

async fn cmd_run(config: &Path, json: bool) -> i32 {
    let (run, rt) = match load_tenant(config, false).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let shown = progress::Shown::run(&run, None);
    let outcome = shown.watch(&rt, &run.tenant, rt.run(&run)).await;
    shown.finish();
    match outcome {
        // The summary on stdout (`run > report.txt` keeps it); logs and progress on stderr.
        Ok(report) if json => print_quietly(&format!("{}\n", report_json(&report))),
        Ok(report) => print_quietly(&print_summary(&report)),
        Err(e) => fail(&e, exit_code(&e)),
    }
}

/// `check` changes nothing: it creates no checkpoint database or events file and repairs
/// nothing (it says what `run` would refuse), and does not connect to a PostgreSQL store
/// (connecting migrates its schema). See `cli/check.rs`.
async fn cmd_check(config: &Path) -> i32 {
    let (run, rt) = match load_tenant(config, true).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    check::run_check(config, &run, &rt).await
}

/// The exit code of `check`'s verdict (0: every probe passed).
fn check_exit_code(verdict: Option<connector_host::check::Verdict>) -> i32 {
    use connector_host::check::Verdict;
    match verdict {
        None => 0,
        Some(Verdict::Egress) => EXIT_EGRESS,
        Some(Verdict::Config) => EXIT_CONFIG,
        Some(Verdict::Endpoint) => EXIT_ENDPOINT,
        Some(Verdict::Token) => EXIT_CREDENTIALS,
        Some(Verdict::Host) => EXIT_HOST,
        Some(Verdict::Sink) => EXIT_SINK,
        Some(Verdict::Permission) => EXIT_PERMISSION,
        Some(Verdict::Upstream) => EXIT_UPSTREAM,
    }
}

async fn cmd_describe(choice: &ConnectorChoice) -> i32 {
    let rt = match runtime_for(choice).await {
        Ok(rt) => rt,
        Err((e, code)) => return fail(e, code),
    };
    let d = rt.description();
    let mut text = format!("{} {}\n", shown(&d.name), shown(&d.version));
    text.push_str(&format!(
        "contract: connector:runtime@{}\n",
        connector_host::runtime::contract::host_version()
    ));
    text.push_str(&format!("emits OCSF classes: {:?}\n", d.event_classes));
    text.push_str(&format!("permissions: {}\n", d.permissions.join(", ")));
    text.push_str(&format!("secrets: {}\n", d.secrets.join(", ")));
    text.push_str("config keys:\n");
    for (name, required, description) in &d.config_keys {
        text.push_str(&format!(
            "  {name:<20} {} {description}\n",
            if *required { "required" } else { "optional" }
        ));
    }
    print_quietly(&text)
}

/// Writes to stdout; a reader that went away (`describe | head -1`) is not an error worth a
/// panic: the output is simply not wanted any more. Other write errors exit 6.
fn print_quietly(text: &str) -> i32 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => fail(format!("cannot write to standard output: {e}"), 6),
    }
}

async fn cmd_serve(tenants: &Path, once: bool, listen: Option<std::net::SocketAddr>) -> i32 {
    use connector_host::serve::{shutdown_signal, Deployment, ServeFile};
    let mut file = match ServeFile::load(tenants) {
        Ok(f) => f,
        Err(e) => return fail(e, EXIT_CONFIG),
    };
    file.options.once |= once;
    file.override_listen(listen);
    let grace = file.options.shutdown_grace.as_secs();
    // One compiled runtime per distinct component, shared by the tenants that run it.
    let components = Components::new(runtime_options());
    let deployment = match Deployment::start(file, &components).await {
        Ok(d) => d,
        Err(e) => return fail(&e, deploy_exit_code(&e)),
    };
    // Notes: plain lines on a text log, JSON objects under `--log-format json` (every line
    // on stderr is then JSON, the summary's lines too).
    for line in deployment.start_line().lines() {
        note(line);
    }
    let summary = deployment
        .server
        .serve(async {
            let signal = shutdown_signal().await;
            note(&format!(
                "{signal}: shutting down; runs in flight get up to {grace} s"
            ));
        })
        .await;
    deployment.stop().await;
    for line in summary.to_string().lines() {
        note(line);
    }
    serve_exit_code(&summary)
}

/// Removes a demo's checkpoint database and events file from `out` (a demo starts anew).
#[cfg(feature = "simulation")]
fn clear_demo_out(out: &Path) {
    for f in [
        "events.jsonl",
        "checkpoints.sqlite",
        "checkpoints.sqlite-wal",
        "checkpoints.sqlite-shm",
    ] {
        let _ = std::fs::remove_file(out.join(f));
    }
}

#[cfg(feature = "simulation")]
async fn cmd_demo(users: usize, seed: u64, out: &Path, then_add: usize, premium: bool) -> i32 {
    clear_demo_out(out);
    let emu_config = EmulatorConfig {
        premium,
        // Graph's own page size for relation lists (the emulator's default of 4 is for tests).
        member_of_page_size: 100,
        ..EmulatorConfig::default()
    };
    note(&format!(
        "starting the Graph emulator with a simulated tenant of {users} users (seed {seed})…"
    ));
    let emu = match Emulator::start(Tenant::generated(seed, users), emu_config).await {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot start the Graph emulator: {e:#}"), 6),
    };
    note(&format!(
        "login endpoint {}  graph endpoint {}",
        emu.login_endpoint(),
        emu.graph_endpoint()
    ));
    let rt = match runtime_for(&ConnectorChoice::default()).await {
        Ok(rt) => rt,
        Err((e, code)) => return fail(e, code),
    };
    let run = match connector_host::simulation::emulator_tenant_run(
        &emu,
        "demo",
        &out.join("checkpoints.sqlite"),
        &out.join("events.jsonl"),
    ) {
        Ok(r) => r,
        Err(e) => return fail(e, 6),
    };
    let code = demo_run(
        &rt,
        &run,
        &emu,
        out,
        Some(users as u64),
        "first run (full sync)",
    )
    .await;
    if code != 0 || then_add == 0 {
        emu.shutdown().await;
        return code;
    }
    let now = std::time::SystemTime::now();
    for u in Tenant::generated(seed.wrapping_add(1), then_add).users() {
        let mut u = u.clone();
        if let Some(obj) = u.user.as_object_mut() {
            let id = obj
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            obj.insert("id".into(), format!("added-{id}").into());
            obj.insert("createdDateTime".into(), graph_time(now).into());
        }
        emu.add_user(u);
    }
    note(&format!("added {then_add} users to the simulated tenant"));
    print_quietly("\n");
    let code = demo_run(
        &rt,
        &run,
        &emu,
        out,
        Some(then_add as u64),
        "second run (incremental)",
    )
    .await;
    emu.shutdown().await;
    code
}

#[cfg(feature = "simulation")]
async fn demo_run(
    rt: &Runtime,
    run: &TenantRun,
    emu: &Emulator,
    out: &Path,
    expect: Option<u64>,
    title: &str,
) -> i32 {
    let before = emu.total_requests();
    let shown = progress::Shown::run(run, expect);
    let outcome = shown.watch(rt, &run.tenant, rt.run(run)).await;
    shown.finish();
    match outcome {
        // The summaries on stdout, as `run`'s; the notes and progress on stderr.
        Ok(report) => print_quietly(&format!(
            "{title}\n{}  graph emulator served   {} requests\n  events file             {}\n",
            print_summary(&report),
            emu.total_requests().saturating_sub(before),
            shown_path(&out.join("events.jsonl"))
        )),
        Err(e) => fail(&e, exit_code(&e)),
    }
}

/// A path as the summary shows it (escaped: a folder name may hold anything).
#[cfg(feature = "simulation")]
fn shown_path(p: &Path) -> String {
    shown(&p.display().to_string()).into_owned()
}

/// An instant as Graph writes it (`2024-05-17T08:30:00Z`).
#[cfg(feature = "simulation")]
fn graph_time(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        use std::ffi::OsStr;
        assert!(super::colour_wanted(true, None));
        assert!(!super::colour_wanted(false, None), "a file or a pipe");
        assert!(!super::colour_wanted(true, Some(OsStr::new("1"))));
        assert!(
            super::colour_wanted(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset (no-color.org)"
        );
    }

    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        let connector = |kind| RunError::Connector {
            tenant: "t".into(),
            kind,
            message: "m".into(),
        };
        assert_eq!(exit_code(&connector(ConnectorErrorKind::Config)), 2);
        assert_eq!(exit_code(&connector(ConnectorErrorKind::Auth)), 3);
        assert_eq!(exit_code(&connector(ConnectorErrorKind::Permission)), 4);
        assert_eq!(exit_code(&connector(ConnectorErrorKind::Upstream)), 5);
        assert_eq!(exit_code(&connector(ConnectorErrorKind::Host)), 6);
        let timeout = RunError::Timeout {
            tenant: "t".into(),
            seconds: 1,
            progress: None,
        };
        assert_eq!(exit_code(&timeout), 6);
        assert_eq!(deploy_exit_code(&DeployError::Config("x".into())), 2);
        assert_eq!(deploy_exit_code(&DeployError::Host("x".into())), 6);
    }

    #[test]
    fn serve_exits_1_only_when_a_once_run_failed() {
        let mut s = Summary {
            tenants: 2,
            tenants_succeeded: 2,
            runs: 2,
            successes: 2,
            failures: Default::default(),
            cut: 0,
            events: 20,
            wall_time: std::time::Duration::from_millis(1500),
            peak_in_flight: 2,
            capacity: 64,
            once: true,
            fleet: false,
        };
        assert_eq!(serve_exit_code(&s), 0);
        s.tenants_succeeded = 1;
        assert_eq!(serve_exit_code(&s), 1);
        s.once = false;
        assert_eq!(
            serve_exit_code(&s),
            0,
            "serve mode exits 0 after a requested shutdown"
        );
    }
}
