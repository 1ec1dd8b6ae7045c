//! All integration tests, in one binary: each module drives a real server on port 0 with real
//! WebSocket and HTTP clients. Modules that need an external tool (Chromium, Prometheus, the
//! Grafana schema) read its location from an environment variable and print SKIP when it is unset;
//! `.ci/run` sets them all.

mod support;

mod admission;
mod bounds;
mod browser;
mod chat;
mod dashboard;
mod descriptors;
mod docs;
mod duplex;
mod errors;
mod faults;
mod health;
mod history;
mod http_limits;
mod hygiene;
mod lifecycle;
mod pages;
mod postgres;
mod prometheus;
mod ratelimit;
mod reads;
mod rest;
mod rest_errors;
mod rest_limits;
mod retention;
mod token_session;
mod tokens;
