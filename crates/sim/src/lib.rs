//! Loopback stand-ins for Weiban and for WeCom robots: the `churn-alert-sim` crate.
//!
//! They serve the documented shapes (the outflow items are built from the documented example,
//! `fixtures/outflow-example.json`, byte for byte), enforce the real limits, and inject faults at
//! configurable rates, so that `churn-alert demo`, the integration tests and the benchmarks
//! all drive the real pipeline over real HTTP without credentials.

#![forbid(unsafe_code)]

pub mod directory;
pub mod robot;
pub mod weiban;

pub use directory::{SimDepartment, SimStaff};
pub use robot::{Attempt, Received, RobotFaults, RobotSim};
pub use weiban::{SimLoss, WeibanFaults, WeibanSim, WeibanSimOptions};

/// The documented `external_user/list/outflow` answer, byte for byte.
pub const OUTFLOW_EXAMPLE: &str = include_str!("../fixtures/outflow-example.json");

/// Binds a loopback listener on an ephemeral port.
async fn bind() -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(("127.0.0.1", 0)).await
}
