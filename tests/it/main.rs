//! The integration tests, in one binary (one link instead of one per file: the cargo and
//! ripgrep habit). Each module is one issue's or one area's acceptance; `common` is the
//! harness: the loopback simulators, the binary, and the daemon run in process.

mod common;

mod audiences;
mod bench_smoke;
mod check;
mod corps;
mod departments;
mod every_loss;
mod first_day;
mod first_hour;
mod foundation;
mod loss_paths;
mod nothing_lost;
mod operate;
mod package;
mod reports;
