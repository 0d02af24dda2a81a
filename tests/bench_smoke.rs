//! The benchmark harness at smoke scale, so that it cannot rot. Figures are not asserted
//! against targets here (that is what BENCHMARKS.md is for); the harness must run, print all
//! five figures, and keep the invariants that are not about speed.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_prints_all_five_figures() {
    let out = tokio::process::Command::new(common::BIN)
        .args(["bench", "--smoke"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run churn-alert bench --smoke");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for figure in [
        "1. backfill throughput",
        "2. host cost",
        "3. robot packing",
        "4. store footprint",
        "5. latency",
    ] {
        assert!(text.contains(figure), "missing `{figure}` in:\n{text}");
    }
    assert!(
        text.contains("limit errors (10052/10053): 0"),
        "Weiban limits were hit:\n{text}"
    );
}
