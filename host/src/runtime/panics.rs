//! A panic in a tenant's run is a host bug, and it costs that run only: [`catch`] turns it
//! into an error the caller counts like any failed run (`run` exits 6 with one line, `serve`
//! records a `host` failure and backs off, a fleet lease is released with the failure), never
//! a dead process, a dead schedule or an unreleased lease.
//!
//! Why not `std::panic::catch_unwind` alone: the message is in the payload, where the panic
//! happened is not, and the default hook prints a multi-line report on stderr whatever the
//! catcher does. [`install_hook`] (the CLI calls it once) records the location of a panic
//! inside [`catch`] for the error and prints nothing for it; every other panic goes to the
//! previous hook as before.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// Depth of [`Catch`] polls on this thread (a panic inside one is caught).
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    /// Where the last caught panic on this thread happened (set by the hook).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic caught by [`catch`]: its message and, with [`install_hook`], its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked {
    /// The panic's message (`"(no message)"` when it carried none).
    pub message: String,
    /// `file:line:column`, when the hook is installed.
    pub location: Option<String>,
}

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // One line, whatever the payload holds.
        let message: String = self
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        match &self.location {
            Some(at) => write!(f, "the host panicked at {at}: {message}"),
            None => write!(f, "the host panicked: {message}"),
        }
    }
}

/// Installs a panic hook that keeps quiet about panics [`catch`] catches (recording their
/// location for its error) and hands every other panic to the hook installed before.
pub fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if CATCHING.with(Cell::get) > 0 {
            let at = info.location().map(Location::to_string);
            LOCATION.with(|l| *l.borrow_mut() = at);
        } else {
            previous(info);
        }
    }));
}

/// Runs `fut`; a panic while it is polled comes back as `Err` instead of unwinding further.
pub fn catch<F: Future>(fut: F) -> Catch<F> {
    Catch {
        inner: Box::pin(fut),
    }
}

/// The future of [`catch`].
pub struct Catch<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Catch<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        CATCHING.with(|c| c.set(c.get().saturating_add(1)));
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(Panicked {
                message: payload_message(payload.as_ref()),
                location: LOCATION.with(|l| l.borrow_mut().take()),
            })),
        }
    }
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_and_a_value_passes_through() {
        assert_eq!(catch(async { 7 }).await, Ok(7));
        let caught = catch(async {
            tokio::task::yield_now().await;
            let d = std::time::Duration::MAX;
            #[allow(clippy::unnecessary_literal_unwrap)]
            Some(d).map(|d| d + std::time::Duration::from_secs(1))
        })
        .await
        .unwrap_err();
        assert!(
            caught.to_string().starts_with("the host panicked")
                && caught.message.contains("overflow"),
            "{caught}"
        );
    }
}
