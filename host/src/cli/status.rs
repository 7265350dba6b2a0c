//! `connector-host status`: where each tenant stands, read from its store or the fleet's
//! database without writing anything (see `connector_host::status`).

use std::path::Path;

use connector_host::serve::ServeFile;
use connector_host::status::{render, Source};
use connector_host::TenantConfig;

/// Exit code of a file that cannot be used.
const EXIT_CONFIG: i32 = 2;
/// Exit code when a store or the fleet's database could not be read.
const EXIT_HOST: i32 = 6;

/// Prints the table (or `--json`) for a tenants file or one tenant file. Exit 0 when every
/// store was read (whatever the tenants' outcomes), 2 for a file that cannot be used, 6
/// when a store could not be read (its tenants say why).
pub async fn cmd_status(tenants: Option<&Path>, config: Option<&Path>, json: bool) -> i32 {
    let source = match (tenants, config) {
        (Some(path), _) => match ServeFile::load(path) {
            Ok(file) => Source::from_serve_file(&file),
            Err(e) => return super::fail(e, EXIT_CONFIG),
        },
        (None, Some(path)) => match TenantConfig::load(path) {
            Ok(cfg) => Source::from_tenant(&cfg),
            Err(e) => return super::fail(e, EXIT_CONFIG),
        },
        (None, None) => {
            return super::fail(
                "status: name the tenants with --tenants tenants.toml or --config tenant.toml",
                EXIT_CONFIG,
            )
        }
    };
    let views = source.views().await;
    let text = if json {
        format!("{}\n", render::json(&views))
    } else {
        render::table(&views, std::time::SystemTime::now())
    };
    let written = super::print_quietly(&text);
    if written != 0 {
        return written;
    }
    match views.iter().find_map(|v| v.unreadable.as_ref()) {
        Some(why) => super::fail(
            format!("status: a store could not be read: {why}"),
            EXIT_HOST,
        ),
        None => 0,
    }
}
