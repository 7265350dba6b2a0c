//! From a tenant file to a run: the one place that reads the tenant file's types
//! ([`crate::config`]) and turns them into the plain values the doors, the checkpoint store
//! and the fleet take.

use crate::config::SecretSpec;
use crate::postgres::{DatabaseError, Password};

/// The PostgreSQL password a `[state] password` or `[fleet] password` names, loaded by
/// [`crate::secrets`]' rules. It goes to the database only: `hosts` is refused.
pub fn database_password(spec: &SecretSpec) -> Result<Password, DatabaseError> {
    if !spec.hosts.is_empty() {
        return Err(DatabaseError::Config(
            "password: hosts = […] does not apply to the database password; remove it".into(),
        ));
    }
    let source = spec
        .source()
        .map_err(|e| DatabaseError::Config(e.keyed("password")))?;
    Password::from_source(&source)
}
