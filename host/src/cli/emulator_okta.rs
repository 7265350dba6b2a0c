//! `connector-host emulator --connector okta`: a simulated Okta org (the Okta emulator,
//! `okta-emulator`, at Okta's documented default rate limits, on the real clock) served on
//! 127.0.0.1 until Ctrl-C or SIGTERM, for an operator to point a tenant file at. It prints the
//! org URL and the API token, and writes a ready tenant file of the built-in `okta` connector
//! (`<out>/tenant.toml`; the token in `<out>/okta_token`, mode 0600, sent by the host as
//! `Authorization: SSWS <token>`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use connector_host::simulation::okta_emulator::{Emulator, OktaClock, OktaConfig, Org};

use super::emulator::{write_private, EXIT_CONFIG, EXIT_HOST};

/// The token file's name in the output folder.
const TOKEN_FILE: &str = "okta_token";

/// Starts the Okta emulator on `port` (0: a free one) with a generated org of `users`
/// (`seed`), prints where it is and writes the tenant file to `out`, then serves until a
/// signal. `Err` is one line and the exit code.
pub async fn serve(users: usize, seed: u64, port: u16, out: PathBuf) -> Result<(), (String, i32)> {
    if users == 0 {
        return Err((
            "--users 0: the simulated org needs at least 1 user".into(),
            EXIT_CONFIG,
        ));
    }
    let clock = OktaClock::system();
    let org = Org::generated(seed, users, clock.now_ms());
    let config = OktaConfig::default();
    let token = config.api_tokens[0].clone();
    let emu = Emulator::start_on(org, config, clock, SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| {
            (
                format!("cannot start the Okta emulator: {e:#}; choose a free port with --port"),
                EXIT_CONFIG,
            )
        })?;
    std::fs::create_dir_all(&out).map_err(|e| {
        (
            format!(
                "--out {}: cannot create the folder: {e}; choose a folder you can write",
                out.display()
            ),
            EXIT_CONFIG,
        )
    })?;
    write_private(&out.join(TOKEN_FILE), &token).map_err(|e| (e, EXIT_CONFIG))?;
    let text = tenant_toml(&emu.base_url(), seed, users);
    let file = out.join("tenant.toml");
    std::fs::write(&file, &text).map_err(|e| {
        (
            format!(
                "--out {}: cannot write tenant.toml: {e}; choose a folder you can write",
                out.display()
            ),
            EXIT_CONFIG,
        )
    })?;
    let report = format!(
        "simulated Okta org: {users} users (seed {seed}) on 127.0.0.1, Okta's default rate limits\n\
         org URL         {org}\n\
         API token       {token}\n\
         tenant file     {file} (the token in {token_file})\n\
         try it          connector-host check --config {file} && connector-host run --config {file}\n\
         --- {file} ---\n{text}---\n\
         serving until Ctrl-C\n",
        org = emu.base_url(),
        file = file.display(),
        token_file = out.join(TOKEN_FILE).display(),
    );
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err((format!("cannot write to standard output: {e}"), EXIT_HOST));
        }
    }
    drop(stdout);
    let signal = connector_host::serve::shutdown_signal().await;
    eprintln!("{signal}: stopping the simulated Okta org");
    emu.shutdown().await;
    Ok(())
}

/// The tenant file of the emulator's org: paths relative to the file's folder.
fn tenant_toml(org_url: &str, seed: u64, users: usize) -> String {
    format!(
        r#"# The simulated Okta org of `connector-host emulator --connector okta --seed {seed} --users {users}`:
# valid while it serves on this port (give --port to keep it across restarts).
[tenant]
key = "emulator-okta"
connector = "okta"

[config]
org_url = "{org_url}"

[secrets.okta_token]
file = "{TOKEN_FILE}"
header = "Authorization"
prefix = "SSWS"

[egress]
allow_loopback_http = true      # the simulated org is plain http on 127.0.0.1

[state]
checkpoint_db = "state/checkpoints.sqlite"

[sink]
kind = "jsonl"
path = "events.jsonl"
"#
    )
}
