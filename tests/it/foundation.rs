//! Issue 2's acceptance: the real binary against the simulators over loopback.

use crate::common::*;
use churn_alert_sim::{RobotFaults, SimLoss};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_loss_is_posted_exactly_once_across_cycles_and_processes() {
    let env = Env::new().await;
    let losses = SimLoss::generate("甲", 250, 7, now() - 60, 60);
    env.weiban.add_losses(&losses);
    let mut example: serde_json::Value =
        serde_json::from_str(churn_alert_sim::OUTFLOW_EXAMPLE).unwrap();
    example["external_user_list"][0]["outflow_at"] = (now() - 120).into();
    env.weiban
        .add_raw(example["external_user_list"].as_array().unwrap().clone());

    let first = env.once().await;
    assert!(first.status.success(), "{}", stderr(&first));
    let received = env.robot.received();
    assert!(received.len() > 1, "250 customers need several messages");
    for m in &received {
        assert_eq!(m.msgtype, "markdown");
        assert!(m.content.len() <= 4096, "{} bytes", m.content.len());
    }
    let text = all_text(&env.robot);
    for loss in &losses {
        assert_eq!(
            text.matches(&loss.customer_name).count(),
            1,
            "{} should be posted exactly once",
            loss.customer_name
        );
    }
    assert_eq!(
        text.matches("子川").count(),
        1,
        "the documented example is posted"
    );
    for staff in 0..7 {
        assert!(text.contains(&format!("销售{staff:02}")));
    }

    // A second cycle and then a fresh process on the same store post nothing new.
    for _ in 0..2 {
        let again = env.once().await;
        assert!(again.status.success(), "{}", stderr(&again));
        assert_eq!(env.robot.received().len(), received.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_robot_fails_the_cycle_and_the_next_cycle_delivers() {
    let env = Env::new().await;
    let losses = SimLoss::generate("乙", 30, 3, now() - 60, 60);
    env.weiban.add_losses(&losses);
    env.robot.set_faults(RobotFaults {
        busy: 1.0,
        ..Default::default()
    });
    let failed = env.once().await;
    assert!(
        !failed.status.success(),
        "a refused message must fail `once`"
    );
    assert!(
        stderr(&failed).contains("errcode -1"),
        "{}",
        stderr(&failed)
    );
    assert!(env.robot.received().is_empty());

    env.robot.set_faults(RobotFaults::default());
    // The robot is left alone for `blocked_wait` (1 s in tests).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ok = env.once().await;
    assert!(ok.status.success(), "{}", stderr(&ok));
    let text = all_text(&env.robot);
    for loss in &losses {
        assert_eq!(text.matches(&loss.customer_name).count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_name_the_config_keys() {
    let env = Env::new().await;
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("sim-corp", "other-corp");
    std::fs::write(&env.config, text).unwrap();
    let out = env.once().await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("weiban.corp_id") && err.contains("weiban.secret"),
        "{err}"
    );
    assert!(err.contains("10001"), "{err}");
    assert!(!err.contains("sim-secret"), "the secret leaked: {err}");
}
