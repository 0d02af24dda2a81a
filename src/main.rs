#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    churn_alert::cmd::main()
}
