//! A tenants file brought to life ([`Deployment`]), and the shutdown signal the CLI waits for.

use std::path::Path;
use std::sync::Arc;

use super::server::{Server, TenantEntry};
use super::ServeFile;
use crate::metrics::MetricsEndpoint;
use crate::{Components, ConnectorChoice, Runtime};

#[cfg(feature = "simulation")]
use crate::simulation::Simulation;

/// Completes on SIGTERM or SIGINT (Ctrl-C) and says which. If a handler cannot be
/// installed, that signal is logged and left to its default action.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); stop the host with SIGINT");
                None
            }
        };
        let terminated = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = terminated => "SIGTERM",
            _ = interrupted() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        interrupted().await;
        "Ctrl-C"
    }
}

async fn interrupted() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!("cannot listen for Ctrl-C ({e})");
        std::future::pending::<()>().await;
    }
}

/// A tenants file brought to life: the server with every tenant registered, its metrics
/// endpoint listening, and the simulation's emulator if the file has one. What
/// `connector-host serve` runs; a test or a platform can drive the same.
pub struct Deployment {
    /// The server, tenants registered, not yet serving.
    pub server: Server,
    /// The `/metrics` + `/healthz` endpoint.
    pub endpoint: MetricsEndpoint,
    /// The simulated tenants' Graph emulator, if the file has a `[simulation]`.
    #[cfg(feature = "simulation")]
    pub simulation: Option<Simulation>,
    /// The file it came from.
    pub file: ServeFile,
}

/// Connects this host to the fleet's database (and migrates it).
async fn connect_fleet(
    spec: &super::FleetSpec,
    file: &Path,
) -> Result<crate::fleet::Fleet, DeployError> {
    // A password that cannot be read (a variable not set, a missing file) or settings that
    // cannot be used are the operator's configuration (exit 2); a database that does not
    // answer or refuses is not (exit 6).
    let password = match &spec.password {
        Some(p) => Some(crate::assembly::database_password(p).map_err(|e| {
            DeployError::Config(format!("{}: {}", file.display(), e.in_section("fleet")))
        })?),
        None => None,
    };
    let host = spec.host_id.clone().unwrap_or_else(default_host_id);
    crate::fleet::Fleet::connect_with(&spec.url, password.as_ref(), host, spec.options.clone())
        .await
        .map_err(|e| match e {
            // Names its section itself: `[fleet] url: …`.
            crate::postgres::DatabaseError::Config { .. } => {
                DeployError::Config(format!("{}: {e}", file.display()))
            }
            e => DeployError::Host(format!(
                "{}: [fleet]: {e}; check url and password, and that the database is up",
                file.display()
            )),
        })
}

/// `$CONNECTOR_HOST_ID`, else `<host name>-<process id>`: unique per process on a machine,
/// readable in the history.
fn default_host_id() -> String {
    if let Some(id) = std::env::var("CONNECTOR_HOST_ID")
        .ok()
        .filter(|id| !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control))
    {
        return id;
    }
    // Through the capped, regular-files-only reader, like every file the host reads.
    let name = crate::files::read_text_file(
        std::path::Path::new("/proc/sys/kernel/hostname"),
        crate::files::MAX_HOSTNAME_BYTES,
        "host name file",
    )
    .ok()
    .or_else(|| std::env::var("HOSTNAME").ok())
    .map(|n| n.trim().to_string())
    .filter(|n| !n.is_empty())
    .unwrap_or_else(|| "host".into());
    format!("{name}-{}", std::process::id())
}

/// Why a [`Deployment`] could not start; each message is one line naming what failed and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The tenants file asks for something that cannot be (a duplicate tenant, an address
    /// already taken): the operator must change it.
    #[error("{0}")]
    Config(String),
    /// The host could not start a part of the deployment (the simulation's emulator).
    #[error("{0}")]
    Host(String),
}

impl Deployment {
    /// Raises the soft open-files limit to the hard one, loads each tenant's component
    /// (from `components`: one compiled runtime per distinct component, shared by its
    /// tenants), starts the simulation (if any), registers every tenant, binds the endpoint
    /// (its connection cap leaves most descriptors to the runs:
    /// [`crate::metrics::connection_cap`]).
    pub async fn start(
        file: ServeFile,
        components: &Components,
    ) -> Result<Deployment, DeployError> {
        let (before, after) = crate::metrics::raise_open_files_limit();
        if before != after {
            tracing::info!(
                before,
                after,
                "raised the open-files limit to its hard limit"
            );
        }
        // Each tenant's component, compiled once per distinct component; a component that
        // cannot be used (unreadable, another contract version) stops the start.
        let mut runtimes: Vec<Arc<Runtime>> = Vec::with_capacity(file.tenants.len());
        for cfg in &file.tenants {
            let rt = components.runtime(&cfg.component).await.map_err(|e| {
                DeployError::Config(format!(
                    "{}: tenant '{}': {e}",
                    file.path.display(),
                    cfg.key
                ))
            })?;
            runtimes.push(rt);
        }
        // The simulated tenants run the built-in Entra connector (their Graph emulator is its
        // simulation).
        let simulated: Option<Arc<Runtime>> = match &file.simulation {
            Some(_) => Some(
                components
                    .runtime(&ConnectorChoice::default())
                    .await
                    .map_err(|e| {
                        DeployError::Config(format!("{}: [simulation]: {e}", file.path.display()))
                    })?,
            ),
            None => None,
        };
        let runtime = match runtimes.first().or(simulated.as_ref()) {
            Some(rt) => rt.clone(),
            None => {
                return Err(DeployError::Config(format!(
                    "{}: no tenant to serve; include tenant files or add a [simulation]",
                    file.path.display()
                )))
            }
        };
        let server = match &file.fleet {
            None => Server::new(runtime.clone(), file.options.clone()),
            Some(spec) => {
                let fleet = connect_fleet(spec, &file.path).await?;
                tracing::info!(
                    host = fleet.host(),
                    "fleet mode: leasing tenants from the database"
                );
                Server::with_fleet(
                    runtime.clone(),
                    file.options.clone(),
                    fleet,
                    spec.lease_ttl,
                    spec.poll,
                )
            }
        };
        #[cfg(feature = "simulation")]
        let simulation = match &file.simulation {
            Some(spec) => Some(Simulation::start(spec).await.map_err(|message| {
                DeployError::Host(format!("{}: [simulation]: {message}", file.path.display()))
            })?),
            None => None,
        };
        let mut entries: Vec<(super::TenantEntry, Arc<Runtime>)> =
            Vec::with_capacity(file.tenants.len());
        // One pool per PostgreSQL database, shared by the tenants that name it.
        let mut pools: std::collections::BTreeMap<String, Arc<dyn crate::CheckpointStore>> =
            Default::default();
        for (cfg, runtime) in file.tenants.iter().zip(&runtimes) {
            // A key or [config] value holding one of the tenant's secrets is refused before
            // the key labels anything or the connector sees the config. A secret that does
            // not load fails the tenant's runs instead (it is re-read at each run).
            if let Ok(secrets) = crate::assembly::tenant_secrets(cfg) {
                crate::assembly::screen_config(cfg, &secrets)
                    .map_err(|e| DeployError::Config(format!("{}: {e}", file.path.display())))?;
            }
            // What the tenant file leaves to the component comes from its egress plan.
            let cfg = runtime
                .resolve_egress(cfg.clone())
                .await
                .map_err(|e| DeployError::Config(format!("{}: {e}", file.path.display())))?;
            let entry = match &cfg.postgres {
                None => TenantEntry::from_config(cfg, file.schedule.clone()),
                Some(pg) => {
                    // Tenants that name one database with the same settings share a pool.
                    let pool_key = format!("{}\u{0}{:?}", pg.url, pg.options);
                    let store = match pools.get(&pool_key) {
                        Some(store) => store.clone(),
                        None => {
                            let store =
                                crate::assembly::open_postgres(&cfg.key, pg).await.map_err(
                                    |e| DeployError::Host(format!("{}: {e}", file.path.display())),
                                )?;
                            pools.insert(pool_key, store.clone());
                            store
                        }
                    };
                    TenantEntry::with_store(cfg, file.schedule.clone(), store)
                }
            };
            entries.push((entry, runtime.clone()));
        }
        let entries = entries.into_iter();
        #[cfg(feature = "simulation")]
        let entries = entries.chain(simulation.iter().flat_map(|sim| {
            let rt = simulated.clone().unwrap_or_else(|| runtime.clone());
            sim.entries(&file.schedule)
                .into_iter()
                .map(move |e| (e, rt.clone()))
        }));
        #[cfg(not(feature = "simulation"))]
        let _ = simulated;
        for (entry, runtime) in entries {
            server
                .register_on(entry, runtime)
                .map_err(|e| DeployError::Config(format!("{}: {e}", file.path.display())))?;
        }
        // Credentials whose end the host knows (a written `expires`, a certificate's
        // notAfter), for the alert that fires before every run of the tenant fails on them;
        // each run sets it again from what it loaded (a rotated certificate moves it).
        for cfg in &file.tenants {
            for e in crate::assembly::credential_expiries(&cfg.secrets) {
                server
                    .metrics()
                    .set_credential_expiry(&cfg.key, &e.secret, e.at);
            }
        }
        let status = crate::status::Source::from_serve_file(&file);
        let endpoint = server
            .listen_with_status(file.listen, status)
            .await
            .map_err(|e| DeployError::Config(listen_error(&file, &e)))?;
        tracing::info!(
            open_files_limit = after,
            max_connections = endpoint.max_connections(),
            "metrics endpoint connection cap"
        );
        Ok(Deployment {
            server,
            endpoint,
            #[cfg(feature = "simulation")]
            simulation,
            file,
        })
    }

    /// The line the CLI prints when it starts serving.
    pub fn start_line(&self) -> String {
        let addr = self.endpoint.local_addr();
        let o = self.server.options();
        let tenants = self.server.tenants().len();
        let line = format!(
            "serving {}{} from {}; at most {} runs at once; metrics http://{addr}/metrics, health http://{addr}/healthz, status http://{addr}/status",
            tenants_text(tenants),
            if o.once { " once" } else { "" },
            self.file.path.display(),
            o.max_concurrent_runs,
        );
        #[cfg(feature = "simulation")]
        if let Some(sim) = &self.simulation {
            return format!("{line}\n{}", simulation_line(sim));
        }
        line
    }

    /// Closes the endpoint and stops the emulator.
    pub async fn stop(self) {
        self.endpoint.shutdown().await;
        #[cfg(feature = "simulation")]
        if let Some(sim) = self.simulation {
            sim.shutdown().await;
        }
    }
}

/// Where the simulated tenants' Graph is: its stable origins (what their connector is
/// configured with and their checkpoints' links name) and the sockets this process serves
/// them on.
#[cfg(feature = "simulation")]
fn simulation_line(sim: &Simulation) -> String {
    let (login, graph) = sim.endpoints();
    let emu = sim.emulator();
    let cfg = emu.config();
    format!(
        "simulated Graph for {}: graph endpoint {graph} (served on {}), login endpoint {login} (served on {}), tenant id {}, client id {}",
        tenants_text(sim.keys().len()),
        emu.graph_endpoint(),
        emu.login_endpoint(),
        cfg.tenant_id,
        cfg.client_id,
    )
}

/// The one line for an endpoint address that cannot be bound: where the address came from
/// (`--listen` or the file's `[serve] listen`), why, and the way out. An address in use
/// (another `serve` on this machine, say) says so and suggests `--listen`.
fn listen_error(file: &ServeFile, e: &std::io::Error) -> String {
    let source = if file.listen_from_command_line {
        format!("--listen {}", file.listen)
    } else {
        format!(
            "{}: [serve] listen = \"{}\"",
            file.path.display(),
            file.listen
        )
    };
    if e.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            "{source}: the address is already in use (another serve on this machine?); give this one another with --listen 127.0.0.1:PORT, or change [serve] listen"
        )
    } else {
        format!("{source}: cannot listen there: {e}; choose a free address and port (--listen ADDR:PORT)")
    }
}

/// `1 tenant`, `3 tenants`.
fn tenants_text(n: usize) -> String {
    if n == 1 {
        "1 tenant".into()
    } else {
        format!("{n} tenants")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_tenant_is_one_tenant_not_one_tenants() {
        assert_eq!(super::tenants_text(1), "1 tenant");
        assert_eq!(super::tenants_text(0), "0 tenants");
        assert_eq!(super::tenants_text(20), "20 tenants");
    }
}
