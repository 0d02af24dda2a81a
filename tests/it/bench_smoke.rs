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

/// The CPU of a child that counts to 100 000 in the shell is seen, to the microsecond: more
/// than nothing, and not cut down to hundredths as `/usr/bin/time` prints it (each ratio to
/// the floor's 0.04 s divides by that figure). A figure to the microsecond is a whole number
/// of hundredths once in 10 000 runs, so it takes three such figures in a row to fail.
#[tokio::test]
async fn a_childs_cpu_is_read_to_the_microsecond() {
    let sh = std::path::Path::new("/bin/sh");
    let busy = [
        "-c".to_owned(),
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done".to_owned(),
    ];
    let mut costs = Vec::new();
    for _ in 0..3 {
        let cost = churn_alert_bench::timed(sh, &busy).await.expect("sh runs");
        costs.push(cost.cpu);
    }
    assert!(costs.iter().all(|cpu| *cpu > 0.005), "{costs:?} CPU s");
    let in_hundredths = |cpu: &f64| (cpu * 100.0 - (cpu * 100.0).round()).abs() < 1e-9;
    assert!(
        !costs.iter().all(in_hundredths),
        "{costs:?} CPU s: whole hundredths, as /usr/bin/time cuts them"
    );
}
