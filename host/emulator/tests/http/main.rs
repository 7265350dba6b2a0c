//! The emulator's behaviour over real HTTP on 127.0.0.1, one module per area.
//!
//! One test binary (not one per file) keeps linking cheap; each module is a part of the
//! Graph and identity-platform behaviour GRAPH.md asks the emulator to honour.

mod assertion;
mod batch;
mod common;
mod delta;
mod faults;
mod groups;
mod groups_delta;
mod latency;
mod limits;
mod load;
mod login;
mod permissions;
mod relations;
mod reports;
mod roles;
mod scale;
mod tenant;
mod throttle;
mod users;
