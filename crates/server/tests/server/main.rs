//! Server tests: the real HTTP server on loopback, a real SQLite record, real local targets, and
//! (in `browser`) headless Chromium driving the web UI.

mod api;
mod browser;
mod harness;
