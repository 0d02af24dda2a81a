//! Issue 9's acceptance: every loss and repeat path an adversarial review found, closed.
//! Each test reproduces the reviewer's setup against the real binary over loopback.

mod common;

use std::time::Duration;

use churn_alert::sim::{SimLoss, WeibanSimOptions};
use common::*;

/// How often each loss's customer name appears in what `key` accepted.
fn times_delivered(env: &Env, key: &str, loss: &SimLoss) -> usize {
    env.robot
        .received()
        .iter()
        .filter(|m| m.key == key)
        .map(|m| m.content.matches(&loss.customer_name).count())
        .sum()
}

fn undelivered<'a>(env: &Env, key: &str, losses: &'a [SimLoss]) -> Vec<&'a str> {
    losses
        .iter()
        .filter(|l| times_delivered(env, key, l) == 0)
        .map(|l| l.customer_name.as_str())
        .collect()
}

/// Item 1: a loss that lands while pages are fetched in parallel shifts the list; the page
/// answered before it and its neighbour answered after it must not skip an item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_a_late_record_while_paging_in_parallel_skips_nothing() {
    let env = Env::new().await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let losses = SimLoss::generate("甲", 300, 10, now() - 120, 60);
    env.weiban.add_losses(&losses);
    let late = SimLoss::generate("迟", 1, 1, now() - 30, 1);
    env.weiban
        .insert_while_paging(100, Duration::from_millis(500), late.clone());

    for _ in 0..2 {
        let out = env.once().await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let all: Vec<SimLoss> = losses.iter().chain(&late).cloned().collect();
    let missing = undelivered(&env, "k1", &all);
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert_eq!(
        times_delivered(&env, "k1", &losses[199]),
        1,
        "the 200th-newest loss, on the shifted page boundary"
    );
}

/// Item 1, same-second ordering: Weiban's order within one second is not stable, so a second
/// that straddles a page boundary can show one item on both pages and another on neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_items_of_one_second_across_a_page_boundary_are_all_fetched() {
    let env = Env::with_options(WeibanSimOptions {
        shuffle_same_second: true,
        ..Default::default()
    })
    .await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let newest = now() - 60;
    let mut losses = SimLoss::generate("秒", 250, 10, newest, 1);
    for (i, loss) in losses.iter_mut().enumerate() {
        // Three losses a second: seconds 33 and 66 straddle the boundaries at 100 and 200.
        loss.outflow_at = newest - (i / 3) as i64;
    }
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let missing = undelivered(&env, "k1", &losses);
    assert!(missing.is_empty(), "never delivered: {missing:?}");
}

/// Item 2: an answer without `total_count` is not "0 more".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item02_a_missing_total_count_pages_on_until_a_short_page() {
    let env = Env::with_options(WeibanSimOptions {
        omit_total_count: true,
        ..Default::default()
    })
    .await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let losses = SimLoss::generate("乙", 250, 10, now() - 60, 30);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let missing = undelivered(&env, "k1", &losses);
    assert!(
        missing.is_empty(),
        "{} never delivered, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    assert!(
        env.weiban.stats().outflow_requests >= 3,
        "250 losses need 3 pages at least"
    );
}

/// Sets where the live window ends, as a daemon stopped at `end` would have left it.
fn set_window_end(store: &std::path::Path, end: i64) {
    let db = sled::open(store).expect("open store");
    let meta = db.open_tree("meta").expect("meta tree");
    meta.insert("window_end", &end.to_be_bytes()).expect("write");
    db.flush().expect("flush");
}

/// Item 3: a backfill that starts after the live window's end leaves the gap to the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item03_backfill_since_yesterday_does_not_skip_the_days_before() {
    let env = Env::new().await;
    let route = env.managers_route(&["k1"]) + "storm_threshold = 0\n";
    env.write_config(&route, FAST);
    let day = 86_400;
    // Stopped five days ago: that window was fetched whole.
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    set_window_end(&env.store_path(), now() - 5 * day);
    // One loss every 6 hours over the last 4.5 days: all of them after the live window.
    let losses = SimLoss::generate("缺", 18, 3, now() - 600, 6 * 3600);
    env.weiban.add_losses(&losses);
    let yesterday = (chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai)
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();

    let out = env.cmd(&["backfill", "--since", &yesterday]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("live window still ends"),
        "{}",
        stderr(&out)
    );
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let missing = undelivered(&env, "k1", &losses);
    assert!(missing.is_empty(), "never requested: {missing:?}");
    for loss in &losses {
        assert_eq!(times_delivered(&env, "k1", loss), 1, "{}", loss.customer_name);
    }
}
