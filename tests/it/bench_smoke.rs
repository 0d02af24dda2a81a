//! The benchmark harness (`churn-alert-bench`) at smoke scale, so that it cannot rot. Figures are not asserted
//! against targets here (that is what BENCHMARKS.md is for); the harness must run, print all
//! five figures, and keep the invariants that are not about speed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_prints_all_five_figures() {
    use clap::Parser as _;
    let args =
        churn_alert_bench::BenchArgs::parse_from(["churn-alert-bench", "--smoke", "--decompose"]);
    let mut out = Vec::new();
    churn_alert_bench::bench(&args, std::path::Path::new(crate::common::BIN), &mut out)
        .await
        .expect("the harness runs");
    let text = String::from_utf8_lossy(&out);
    for figure in [
        "1. backfill throughput",
        "2. host cost",
        "3. robot packing",
        "4. store footprint",
        "5. latency",
        "6. side by side",
        // `--decompose`: `preview --live` on the same losses, which must read them all and send
        // nothing.
        "churn-alert `preview --live` (fetch, parse, route and render; nothing stored or sent)",
    ] {
        assert!(text.contains(figure), "missing `{figure}` in:\n{text}");
    }
    assert!(
        text.contains("limit errors (10052/10053): 0"),
        "Weiban limits were hit:\n{text}"
    );
}
