//! The Okta emulator's behaviour over real HTTP on 127.0.0.1, one module per area. Time moves
//! by advancing the emulator's manual clock, never by sleeping.

mod auth;
mod common;
mod limits;
mod logs;
mod users;
