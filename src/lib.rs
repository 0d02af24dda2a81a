//! churn-alert: alerts sales teams when WeCom customers are lost, as Weiban reports them.
//!
//! The program is a pipeline, and the modules follow it:
//! [`source`] (Weiban) → [`store`] (dedup + outbox) → [`transform`] (routes) →
//! [`render`] (Handlebars, splitting) → [`sink`] (WeCom robots). [`pipeline`] runs one cycle
//! of it; [`cmd`] holds one file per command; [`sim`] has loopback stand-ins for Weiban and
//! WeCom used by `demo`, the tests and the benchmarks.
#![forbid(unsafe_code)]

pub mod cli;
pub mod cmd;
pub mod config;
pub(crate) mod destination;
pub mod logging;
pub mod loss;
pub mod pipeline;
pub mod render;
pub mod schedule;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod sink;
pub mod source;
pub mod store;
pub mod transform;
