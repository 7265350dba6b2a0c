//! The test PostgreSQL (`scripts/test-postgres`): where it is, and a fresh database per
//! test. Shared by the PostgreSQL and fleet tests.

#![allow(dead_code)]

use connector_host::fleet::Password;

pub const DEFAULT_URL: &str = "postgres://connector_test@127.0.0.1:55432/connector_test";
pub const DEFAULT_PASSWORD: &str = "connector-test-password";
pub const DEFAULT_CA: &str = "/etc/postgresql/15/connector-test/test-ca.crt";

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn base_url() -> String {
    env_or("CONNECTOR_TEST_POSTGRES_URL", DEFAULT_URL)
}

pub fn password() -> Password {
    Password::new(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD))
}

pub fn unreachable(e: impl std::fmt::Display) -> ! {
    panic!(
        "cannot reach the test PostgreSQL at {} ({e}); run `bash scripts/test-postgres` (as root) first",
        base_url()
    )
}

/// `base_url()` with another database name.
pub fn url_of(database: &str) -> String {
    let mut url = url::Url::parse(&base_url()).unwrap_or_else(|e| unreachable(e));
    url.set_path(&format!("/{database}"));
    url.to_string()
}

/// An administrative connection to the base database (the driver itself, not the code
/// under test).
pub async fn admin() -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = base_url().parse().unwrap_or_else(|e| unreachable(e));
    config.password(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| unreachable(e));
    tokio::spawn(connection);
    client
}

/// A new, empty database for one test; returns its URL.
pub async fn fresh_database(test: &str) -> String {
    let name = format!("ct_{test}");
    let admin = admin().await;
    // One statement each: neither may run inside a (multi-statement) transaction.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        if let Err(e) = admin.batch_execute(&sql).await {
            panic!("{sql}: {e} {:?}", e.as_db_error().map(|d| d.message()));
        }
    }
    url_of(&name)
}

/// A `connector-host serve --tenants <dir>/tenants.toml` process named `id`
/// (`CONNECTOR_HOST_ID`), with the test database's password in `FLEET_DB_PASSWORD`, its
/// compiled-component cache in `cache` and its stderr in `log`.
pub fn spawn_serve(
    dir: &std::path::Path,
    cache: &std::path::Path,
    id: &str,
    log: &std::path::Path,
) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
        .args(["--log", "warn", "--cache-dir"])
        .arg(cache)
        .args(["serve", "--tenants"])
        .arg(dir.join("tenants.toml"))
        .current_dir(dir)
        .env("CONNECTOR_HOST_ID", id)
        .env(
            "FLEET_DB_PASSWORD",
            env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("a log file"))
        .spawn()
        .expect("connector-host starts")
}
