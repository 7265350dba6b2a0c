//! The contract version check: a component built against another version of the
//! `connector:runtime` WIT package is refused in one line naming both versions, before
//! linking (whose own error would name a missing function, not the cause).
//!
//! The component's imports and exports carry the package version in their names
//! (`connector:runtime/http-fetch@0.3.0`); the host's version is read from the same
//! `wit/connector.wit` its bindings are generated from, so the two cannot drift.

use wasmtime::component::Component;
use wasmtime::Engine;

/// The `connector:runtime` WIT package as the host's bindings know it.
const WIT: &str = include_str!("../../../wit/connector.wit");

/// The package name every contract interface starts with.
const PACKAGE: &str = "connector:runtime";

/// The version of `connector:runtime` this host serves (`0.3.0`), from its WIT file's
/// `package connector:runtime@X.Y.Z;` line.
pub fn host_version() -> &'static str {
    WIT.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("package connector:runtime@")
                .map(|v| v.trim_end_matches(';').trim())
        })
        .expect("wit/connector.wit declares `package connector:runtime@X.Y.Z;`")
}

/// A component that does not speak this host's contract (another version, or none): the
/// operator's to fix (rebuild it, or name another), never a host failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ContractError(pub String);

/// `Err` (one line) when `component` names `connector:runtime` interfaces of another
/// version than this host's, or none at all.
pub fn check(engine: &Engine, component: &Component) -> Result<(), ContractError> {
    let ours = host_version();
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .chain(ty.exports(engine).map(|(name, _)| name.to_string()))
        .collect();
    check_names(names.iter().map(String::as_str), ours).map_err(ContractError)
}

fn check_names<'a>(names: impl Iterator<Item = &'a str>, ours: &str) -> Result<(), String> {
    let mut seen = false;
    for name in names {
        let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        seen = true;
        let version = rest
            .split_once('@')
            .map(|(_, v)| v)
            .unwrap_or("(no version)");
        if version != ours {
            return Err(format!(
                "it was built against {PACKAGE}@{version} ({name}); this host serves {PACKAGE}@{ours}: rebuild it against the wit/ of this host"
            ));
        }
    }
    if !seen {
        return Err(format!(
            "it is not a connector: it imports and exports no {PACKAGE} interface; build it for the asset-connector world of {PACKAGE}@{ours}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_version_is_the_wit_package_version() {
        let v = host_version();
        let parts: Vec<&str> = v.split('.').collect();
        assert_eq!(parts.len(), 3, "{v}");
        assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{v}");
        assert!(WIT.contains(&format!("package connector:runtime@{v};")));
    }

    #[test]
    fn another_version_or_no_contract_is_refused_in_one_line() {
        let ours = "0.3.0";
        assert!(check_names(
            ["wasi:io/poll@0.2.0", "connector:runtime/log@0.3.0"].into_iter(),
            ours
        )
        .is_ok());
        let e = check_names(
            ["wasi:io/poll@0.2.0", "connector:runtime/log@0.2.0"].into_iter(),
            ours,
        )
        .unwrap_err();
        assert_eq!(e, "it was built against connector:runtime@0.2.0 (connector:runtime/log@0.2.0); this host serves connector:runtime@0.3.0: rebuild it against the wit/ of this host");
        let e = check_names(["wasi:io/poll@0.2.0"].into_iter(), ours).unwrap_err();
        assert!(
            e.contains("imports and exports no connector:runtime"),
            "{e}"
        );
        let e = check_names(["connector:runtime/log"].into_iter(), ours).unwrap_err();
        assert!(e.contains("connector:runtime@(no version)"), "{e}");
    }
}
