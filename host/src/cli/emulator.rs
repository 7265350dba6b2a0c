//! `connector-host emulator`: the built-in Entra connector's simulated Graph (the Graph
//! emulator), served on 127.0.0.1 until Ctrl-C or SIGTERM, for an operator to point a tenant
//! file at. It prints its login and Graph endpoints, the tenant id, client id and client
//! secret, and writes a ready tenant file (`<out>/tenant.toml`, the format `run` and `check`
//! take; the secret in `<out>/client_secret`, given by `[secrets.client_secret] file`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use graph_emulator::{Emulator, EmulatorConfig, Tenant};

/// What the command line asked for.
pub struct EmulatorOptions {
    /// Users of the generated tenant.
    pub users: usize,
    /// Seed of the generated tenant (same seed, same users).
    pub seed: u64,
    /// The Graph server's port (0: a free one).
    pub port: u16,
    /// The login server's port (None: `port + 1`, or a free one when `port` is 0).
    pub login_port: Option<u16>,
    /// Folder of the tenant file, its secret file, and the state and events a run writes.
    pub out: PathBuf,
}

/// Exit code of an option that cannot be used (a port taken or out of range, a folder that
/// cannot be written).
pub(super) const EXIT_CONFIG: i32 = 2;
/// Exit code of a host failure.
pub(super) const EXIT_HOST: i32 = 6;

/// Starts the emulator, prints where it is and writes the tenant file, then serves until a
/// signal. `Err` is one line and the exit code.
pub async fn serve(opts: EmulatorOptions) -> Result<(), (String, i32)> {
    let login_port = match (opts.login_port, opts.port) {
        (Some(port), _) => port,
        (None, 0) => 0,
        (None, port) => port.checked_add(1).ok_or_else(|| {
            (
                "--port 65535 leaves no port for the login server (port + 1): choose a lower --port or give --login-port".to_string(),
                EXIT_CONFIG,
            )
        })?,
    };
    if opts.users == 0 {
        return Err((
            "--users 0: the simulated tenant needs at least 1 user".into(),
            EXIT_CONFIG,
        ));
    }
    let graph_addr = SocketAddr::from(([127, 0, 0, 1], opts.port));
    let login_addr = SocketAddr::from(([127, 0, 0, 1], login_port));
    let config = EmulatorConfig {
        // Graph's own page size for relation lists (the emulator's default of 4 is for tests),
        // as in `demo`; every other limit as Graph documents it.
        member_of_page_size: 100,
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start_on(
        Tenant::generated(opts.seed, opts.users),
        config,
        login_addr,
        graph_addr,
    )
    .await
    .map_err(|e| {
        (
            format!("cannot start the Graph emulator: {e:#}; choose free ports with --port (Graph) and --login-port"),
            EXIT_CONFIG,
        )
    })?;
    let file = write_tenant_file(&emu, &opts).map_err(|e| (e, EXIT_CONFIG))?;
    let cfg = emu.config();
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let secret_file = opts.out.join(SECRET_FILE);
    let report = format!(
        "simulated Graph: a tenant of {users} users (seed {seed}) on 127.0.0.1\n\
         login endpoint  {login}\n\
         graph endpoint  {graph}\n\
         tenant id       {tenant}\n\
         client id       {client}\n\
         client secret   {secret}\n\
         tenant file     {file} (the secret in {secret_file})\n\
         try it          connector-host check --config {file} && connector-host run --config {file}\n\
         --- {file} ---\n{text}---\n\
         serving until Ctrl-C\n",
        users = opts.users,
        seed = opts.seed,
        login = emu.login_endpoint(),
        graph = emu.graph_endpoint(),
        tenant = cfg.tenant_id,
        client = cfg.client_id,
        secret = cfg.client_secret,
        file = file.display(),
        secret_file = secret_file.display(),
    );
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(report.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err((format!("cannot write to standard output: {e}"), EXIT_HOST));
        }
    }
    drop(out);
    let signal = connector_host::serve::shutdown_signal().await;
    eprintln!("{signal}: stopping the simulated Graph");
    emu.shutdown().await;
    Ok(())
}

/// The secret file's name in the output folder.
const SECRET_FILE: &str = "client_secret";

/// Writes `<out>/client_secret` (mode 0600) and `<out>/tenant.toml`; returns the tenant
/// file's path.
fn write_tenant_file(emu: &Emulator, opts: &EmulatorOptions) -> Result<PathBuf, String> {
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| {
        format!(
            "--out {}: cannot create the folder: {e}; choose a folder you can write",
            out.display()
        )
    })?;
    let cfg = emu.config();
    write_private(&out.join(SECRET_FILE), &cfg.client_secret)?;
    let text = tenant_toml(emu, opts.seed, opts.users);
    let path = out.join("tenant.toml");
    std::fs::write(&path, text).map_err(|e| {
        format!(
            "--out {}: cannot write tenant.toml: {e}; choose a folder you can write",
            out.display()
        )
    })?;
    Ok(path)
}

/// The tenant file of the emulator's tenant: paths relative to the file's folder.
fn tenant_toml(emu: &Emulator, seed: u64, users: usize) -> String {
    let cfg = emu.config();
    format!(
        r#"# The simulated Graph of `connector-host emulator --seed {seed} --users {users}`:
# valid while it serves on these ports (give --port to keep them across restarts).
[tenant]
key = "emulator"

[config]
tenant_id = "{tenant}"
client_id = "{client}"
login_endpoint = "{login}"
graph_endpoint = "{graph}"

[secrets.client_secret]
file = "{SECRET_FILE}"

[egress]
allow_loopback_http = true      # the simulated Graph is plain http on 127.0.0.1

[state]
checkpoint_db = "state/checkpoints.sqlite"

[sink]
kind = "jsonl"
path = "events.jsonl"
"#,
        tenant = cfg.tenant_id,
        client = cfg.client_id,
        login = emu.login_endpoint(),
        graph = emu.graph_endpoint(),
    )
}

/// Writes `text` to a file only its owner can read (a secret).
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            format!(
                "cannot write the secret to {}: {e}; choose another --out",
                path.display()
            )
        })
}
