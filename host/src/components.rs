//! Which component a tenant runs, and one compiled [`Runtime`] per distinct component.
//!
//! The library embeds no connector. A tenant names its connector with `[tenant] connector`
//! ([`ConnectorChoice`]): a component file, or the name of a connector built in to the CLI
//! (the `builtin` feature, on by default, ships them from the `builtin-connectors` crate;
//! an embedder built with `default-features = false` has none and names files).
//!
//! [`Components`] compiles each distinct component once (by content: two paths to the same
//! bytes share one runtime) and hands the same [`Runtime`] to every tenant that runs it, so
//! `serve` runs tenants of different connectors in one process.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::ConnectorChoice;
use crate::{Runtime, RuntimeOptions};

/// The names of the connectors built in to this build, comma-separated ("" without the
/// `builtin` feature).
pub fn builtin_names() -> String {
    #[cfg(feature = "builtin")]
    {
        builtin_connectors::names()
    }
    #[cfg(not(feature = "builtin"))]
    {
        String::new()
    }
}

/// The bytes of the component `choice` names. `Err` is one line naming the connector and
/// the fix.
pub fn component_bytes(choice: &ConnectorChoice) -> Result<Cow<'static, [u8]>, String> {
    match choice {
        ConnectorChoice::File(path) => crate::files::read_regular_file(
            path,
            crate::files::MAX_COMPONENT_BYTES,
            "component file",
        )
        .map(Cow::Owned)
        .map_err(|e| e.to_string()),
        ConnectorChoice::Builtin(name) => builtin(name),
    }
}

#[cfg(feature = "builtin")]
fn builtin(name: &str) -> Result<Cow<'static, [u8]>, String> {
    builtin_connectors::by_name(name).map(Cow::Borrowed).ok_or_else(|| {
        format!(
            "[tenant] connector = \"{name}\": no connector of this name is built in (built in: {}); name one of them or a .wasm file",
            builtin_connectors::names()
        )
    })
}

#[cfg(not(feature = "builtin"))]
fn builtin(name: &str) -> Result<Cow<'static, [u8]>, String> {
    Err(format!(
        "[tenant] connector = \"{name}\": this build has no built-in connectors (built without the `builtin` feature); name a .wasm file"
    ))
}

/// The compiled runtimes of one process, one per distinct component, shared by the tenants
/// that run it.
pub struct Components {
    options: RuntimeOptions,
    loaded: tokio::sync::Mutex<BTreeMap<[u8; 32], Arc<Runtime>>>,
}

impl Components {
    /// No component loaded yet; each is compiled with `options` when first asked for.
    pub fn new(options: RuntimeOptions) -> Components {
        Components {
            options,
            loaded: Default::default(),
        }
    }

    /// The runtime of `choice`'s component, compiled on first use. `Err` is one line
    /// naming the component and what failed (unreadable, not a connector, another contract
    /// version).
    pub async fn runtime(&self, choice: &ConnectorChoice) -> Result<Arc<Runtime>, String> {
        let bytes = component_bytes(choice)?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let mut loaded = self.loaded.lock().await;
        if let Some(rt) = loaded.get(&digest) {
            return Ok(rt.clone());
        }
        let rt = Runtime::with_options(&bytes, self.options.clone())
            .await
            .map_err(|e| format!("cannot load the {choice}: {e:#}"))?;
        let rt = Arc::new(rt);
        loaded.insert(digest, rt.clone());
        Ok(rt)
    }

    /// How many distinct components are compiled.
    pub async fn count(&self) -> usize {
        self.loaded.lock().await.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "builtin")]
    #[test]
    fn a_builtin_name_resolves_and_an_unknown_one_lists_the_builtin_ones() {
        let entra = component_bytes(&ConnectorChoice::default()).unwrap();
        assert_eq!(&entra[..], builtin_connectors::ENTRA_ID);
        let okta = component_bytes(&ConnectorChoice::Builtin("okta".into())).unwrap();
        assert_eq!(&okta[..], builtin_connectors::OKTA);
        let e = component_bytes(&ConnectorChoice::Builtin("google".into())).unwrap_err();
        assert_eq!(
            e,
            format!(
                "[tenant] connector = \"google\": no connector of this name is built in (built in: {}); name one of them or a .wasm file",
                builtin_names()
            )
        );
        assert_eq!(builtin_names(), "entra-id, okta");
    }

    #[cfg(not(feature = "builtin"))]
    #[test]
    fn without_the_builtin_feature_no_name_resolves_and_the_fix_is_a_file() {
        let e = component_bytes(&ConnectorChoice::default()).unwrap_err();
        assert!(e.contains("this build has no built-in connectors"), "{e}");
        assert!(e.contains("name a .wasm file"), "{e}");
        assert_eq!(builtin_names(), "");
    }

    #[test]
    fn a_component_file_that_is_not_there_is_one_line_naming_it() {
        let e =
            component_bytes(&ConnectorChoice::File("/nonexistent/okta.wasm".into())).unwrap_err();
        assert!(e.contains("/nonexistent/okta.wasm"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
