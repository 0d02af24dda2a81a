//! churn-alert: alerts sales teams when WeCom customers are lost, as Weiban reports them.
//!
//! The program is a pipeline, and the modules follow it:
//! [`source`] (Weiban) → [`store`] (dedup + outbox) → [`transform`] (routes) →
//! [`render`] (Handlebars, splitting) → [`sink`] (WeCom robots). [`pipeline`] runs one cycle
//! of it; [`cmd`] holds one file per command. The loopback stand-ins for Weiban and WeCom used
//! by `demo`, the tests and the benchmarks are the `churn-alert-sim` crate; the benchmark
//! harness is `churn-alert-bench`, which needs [`store`] and [`loss`].
#![forbid(unsafe_code)]

pub(crate) mod backoff;
pub(crate) mod cli;
pub mod cmd;
pub(crate) mod config;
pub mod corp;
pub(crate) mod deliver;
pub mod destination;
pub mod directory;
pub mod hold;
pub mod http;
pub(crate) mod inspect;
pub(crate) mod logging;
pub mod loss;
pub(crate) mod pipeline;
pub mod reload;
pub(crate) mod render;
pub(crate) mod report;
pub(crate) mod schedule;
pub(crate) mod secret;
pub(crate) mod server;
pub mod shutdown;
pub(crate) mod sink;
pub(crate) mod source;
pub mod store;
pub mod time;
pub(crate) mod transform;
pub mod zone;
