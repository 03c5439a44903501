//! skiplock-dashboard's integration tests: one binary. `http` drives the
//! router without a socket (tower's `oneshot`); `browser` drives a real
//! headless Chromium through chromedriver against a dashboard on loopback.
//! One fresh database per test.

mod browser;
mod http;
mod support;
