//! Issue 11's acceptance: the org chart from Weiban, routing by department, department
//! robots with a fallback, ambiguous names, outages, still-followed marks, the `staff` command.

use crate::common::*;
use churn_alert_sim::{SimDepartment, SimLoss, SimStaff};

fn org(env: &Env) {
    let d = department;
    let s = |id, name, departments, status| SimStaff {
        status,
        ..staff(id, name, departments)
    };
    env.weiban.set_directory(
        vec![
            d(1, "公司", 0),
            d(2, "销售一部", 1),
            d(3, "华东组", 2),
            d(4, "销售二部", 1),
            d(5, "华东组", 4),
        ],
        vec![
            s("zhang", "张三", vec![3], 1),
            s("li", "李四", vec![4], 1),
            s("wang", "王五", vec![2, 4], 1),
            s("zhao", "赵六", vec![1], 1),
            s("chen", "陈七", vec![3], 4),
        ],
    );
}

/// One loss of each staff member, customer named `<prefix><staff id>`.
fn losses_of(prefix: &str, staff: &[(&str, &str)]) -> Vec<SimLoss> {
    let mut losses = SimLoss::generate(prefix, staff.len(), 1, now() - 60, 5);
    for (loss, (id, name)) in losses.iter_mut().zip(staff) {
        loss.staff_id = (*id).into();
        loss.staff_name = (*name).into();
        loss.customer_name = format!("{prefix}{id}");
    }
    losses
}

const STAFF: [(&str, &str); 4] = [
    ("zhang", "张三"),
    ("li", "李四"),
    ("wang", "王五"),
    ("zhao", "赵六"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_and_their_sub_departments_filter_routes() {
    let env = Env::new().await;
    org(&env);
    let routes = format!(
        "[[route]]\nname = \"team1\"\naudience = \"managers\"\ndepartments = [\"销售一部\"]\nwecom_webhooks = [\"{}\"]\n\n[[route]]\nname = \"others\"\naudience = \"managers\"\nexclude_departments = [2]\nwecom_webhooks = [\"{}\"]\n",
        env.robot.url("k-team1"),
        env.robot.url("k-others")
    );
    env.write_config(&routes, FAST);
    env.weiban.add_losses(&losses_of("甲", &STAFF));
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let team1 = got(&env, "k-team1");
    assert!(
        team1.contains("甲zhang") && team1.contains("甲wang"),
        "{team1}"
    );
    assert!(
        !team1.contains("甲li") && !team1.contains("甲zhao"),
        "{team1}"
    );
    let others = got(&env, "k-others");
    assert!(
        others.contains("甲li") && others.contains("甲zhao"),
        "{others}"
    );
    assert!(
        !others.contains("甲zhang") && !others.contains("甲wang"),
        "{others}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn department_robots_take_their_teams_with_a_fallback_and_both_for_two_departments() {
    let env = Env::new().await;
    org(&env);
    let routes = format!(
        "[[route]]\nname = \"leads\"\naudience = \"managers\"\ngroup_by = \"department\"\nwecom_webhooks = [\"{}\"]\n[route.department_webhooks]\n\"销售一部\" = \"{}\"\n4 = \"{}\"\n",
        env.robot.url("k-fallback"),
        env.robot.url("k-one"),
        env.robot.url("k-two")
    );
    env.write_config(&routes, FAST);
    let mut staff = STAFF.to_vec();
    staff.push(("chen", "陈七"));
    env.weiban.add_losses(&losses_of("乙", &staff));
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let one = got(&env, "k-one");
    let two = got(&env, "k-two");
    let fallback = got(&env, "k-fallback");
    assert!(
        one.contains("乙zhang") && one.contains("乙wang") && one.contains("乙chen"),
        "{one}"
    );
    assert!(two.contains("乙li") && two.contains("乙wang"), "{two}");
    assert!(
        !one.contains("乙li") && !two.contains("乙zhang"),
        "{one}\n{two}"
    );
    assert!(
        fallback.contains("乙zhao") && !fallback.contains("乙zhang"),
        "{fallback}"
    );
    assert!(
        one.contains("### 销售一部 / 华东组"),
        "grouped by department: {one}"
    );
    assert!(one.contains("已离职"), "chen left: {one}");
}

/// Issue 19: `once --dry-run` and the real `once` of the same window name the same
/// destinations and the same losses, department robots included (the dry run runs the poll's
/// own stages with the org chart, and stops before recording).
#[tokio::test(start_paused = true)]
async fn a_dry_run_names_the_destinations_and_losses_the_real_run_delivers() {
    let env = Env::new().await;
    org(&env);
    let routes = format!(
        "[[route]]\nname = \"leads\"\naudience = \"managers\"\nstorm_threshold = 0\nwecom_webhooks = [\"{}\"]\n[route.department_webhooks]\n\"销售一部\" = \"{}\"\n4 = \"{}\"\n",
        env.robot.url("k-fallback"),
        env.robot.url("k-one"),
        env.robot.url("k-two")
    );
    env.write_config(&routes, FAST);
    env.weiban.add_losses(&losses_of("试", &STAFF));
    let dry = env.in_process(&["once", "--dry-run"]).await;
    assert_eq!(dry.code, std::process::ExitCode::SUCCESS, "{}", dry.stderr);
    assert!(env.robot.received().is_empty(), "a dry run sends nothing");
    // The dry run's sections, by the label each destination is described with.
    let section = |label: &str| -> String {
        dry.stdout
            .split("══ ")
            .filter(|s| s.starts_with("route `leads`") && s.contains(label))
            .collect()
    };
    let planned = [
        // 销售一部 is department 2: department robots are known by the department's id.
        ("k-one", section("robot of department 2 (")),
        ("k-two", section("robot of department 4 (")),
        ("k-fallback", section("robot #1 (")),
    ];
    let real = env.once_in_process().await;
    assert_eq!(
        real.code,
        std::process::ExitCode::SUCCESS,
        "{}",
        real.stderr
    );
    for (key, plan) in planned {
        let delivered = got(&env, key);
        for (id, _) in STAFF {
            let customer = format!("试{id}");
            assert_eq!(
                plan.contains(&customer),
                delivered.contains(&customer),
                "{customer} at {key}: planned\n{plan}\ndelivered\n{delivered}"
            );
        }
        assert!(!delivered.is_empty(), "{key} received something to compare");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_rejects_an_ambiguous_department_name_listing_the_candidates() {
    let env = Env::new().await;
    org(&env);
    let route = env.managers_route(&["k1"]) + "departments = [\"华东组\"]\n";
    env.write_config(&route, FAST);
    let out = env.cmd(&["check", "--online"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("销售一部 / 华东组 (id 3)") && err.contains("销售二部 / 华东组 (id 5)"),
        "{err}"
    );
}

/// Issue 18 §2: a name Weiban does not know fails `check --online`, in every key that names
/// departments, each named with its route and key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_rejects_department_names_weiban_does_not_know() {
    let env = Env::new().await;
    org(&env);
    let route = format!(
        "{}departments = [\"销售1部\"]\nexclude_departments = [\"售后部\"]\n\
         [route.department_webhooks]\n\"销售一部\" = \"{}\"\n\"销售三部\" = \"{}\"\n\
         [route.department_emails]\n\"市场部\" = \"m@example.com\"\n",
        env.managers_route(&["k1"]),
        env.robot.url("d1"),
        env.robot.url("d3"),
    );
    let smtp =
        "[smtp]\nhost = \"127.0.0.1\"\nport = 25\nsecurity = \"none\"\nfrom = \"a@example.com\"\n";
    env.write_config(&route, &format!("{FAST}\n{smtp}"));
    let out = env.cmd(&["check", "--online"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    for (key, name) in [
        ("departments", "销售1部"),
        ("exclude_departments", "售后部"),
        ("department_webhooks", "销售三部"),
        ("department_emails", "市场部"),
    ] {
        assert!(
            err.contains(&format!(
                "route `managers`, `{key}`: no department `{name}`"
            )),
            "{key}: {err}"
        );
    }
    assert!(
        !err.contains("no department `销售一部`"),
        "a known name is no error: {err}"
    );
}

/// Issue 18 §8: names from Weiban are printed with control characters escaped, in
/// `check --online`'s errors and in `staff`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weiban_names_reach_the_terminal_with_control_characters_escaped() {
    let env = Env::new().await;
    let d = |id, name: &str, parent| SimDepartment {
        id,
        name: name.into(),
        parent,
    };
    env.weiban.set_directory(
        vec![
            d(1, "公司", 0),
            d(2, "一部\u{1b}[2J", 1),
            d(3, "华东\u{1b}]0;x\u{7}组", 2),
            d(4, "华东\u{1b}]0;x\u{7}组", 1),
        ],
        vec![SimStaff {
            id: "zhang".into(),
            name: "张\r三\u{202e}".into(),
            email: None,
            status: 1,
            departments: vec![3],
        }],
    );
    let route = env.managers_route(&["k1"]) + "departments = [\"华东\\u001b]0;x\\u0007组\"]\n";
    env.write_config(&route, FAST);
    let out = env.cmd(&["check", "--online"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("names 2 departments"), "{err}");
    assert!(
        err.contains("华东\\u{1b}]0;x\\u{7}组") && err.contains("一部\\u{1b}[2J"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");

    let staff = env.cmd(&["staff"]).await;
    assert!(staff.status.success(), "{}", stderr(&staff));
    let text = stdout(&staff);
    assert!(text.contains("张\\u{d}三\\u{202e}"), "{text}");
    assert!(
        !text.contains('\r') && !text.contains('\u{202e}'),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_survives_a_weiban_outage_from_the_store() {
    let env = Env::new().await;
    org(&env);
    let routes = format!(
        "[[route]]\nname = \"team1\"\naudience = \"managers\"\ndepartments = [\"销售一部\"]\nwecom_webhooks = [\"{}\"]\n",
        env.robot.url("k1")
    );
    // A staff member the org chart does not know is held (issue 18), then after `hold_for`
    // goes to the route's own robot: at once here.
    env.write_config(
        &routes,
        &format!("{FAST}\n[directory]\nhold_for = \"0s\"\n"),
    );
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    env.weiban.set_down("staff/list", true);
    env.weiban.set_down("department/list", true);
    // A stranger forces a refresh, which fails: routing goes on from the saved copy.
    let mut losses = losses_of("丙", &STAFF);
    losses.extend(losses_of("丙", &[("stranger", "新人")]));
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = got(&env, "k1");
    assert!(
        text.contains("丙zhang") && text.contains("丙wang"),
        "{text}"
    );
    assert!(!text.contains("丙li") && !text.contains("丙zhao"), "{text}");
    assert!(
        text.contains("丙stranger"),
        "a staff member the directory does not know is reported, not dropped: {text}"
    );
    assert!(
        env.weiban
            .directory_requests()
            .get("department/list")
            .copied()
            .unwrap_or(0)
            >= 2,
        "a refresh was attempted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn still_followed_customers_are_marked_and_a_failed_lookup_still_alerts() {
    let env = Env::new().await;
    let losses = losses_of("丁", &[("zhang", "张三"), ("li", "李四")]);
    env.weiban
        .set_followers(&losses[0].customer_id, &[("zhang", "张三"), ("li", "李四")]);
    env.weiban.add_losses(&losses[..1]);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        all_text(&env.robot).contains("仍由 李四 跟进"),
        "{}",
        all_text(&env.robot)
    );

    env.weiban.set_down("external_user/get", true);
    env.weiban.add_losses(&losses[1..]);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    assert!(
        text.contains("丁li"),
        "the alert went out without the mark: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_if_still_followed_leaves_out_customers_a_colleague_keeps() {
    let env = Env::new().await;
    let route = env.managers_route(&["k1"]) + "skip_if_still_followed = true\n";
    env.write_config(&route, FAST);
    let losses = losses_of("戊", &[("zhang", "张三"), ("li", "李四")]);
    env.weiban
        .set_followers(&losses[0].customer_id, &[("wang", "王五")]);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    assert!(!text.contains("戊zhang") && text.contains("戊li"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_follow_staffs_never_count_the_losing_staff_member_as_a_colleague() {
    let env = Env::new().await;
    let route = env.managers_route(&["k1"]) + "skip_if_still_followed = true\n";
    env.write_config(&route, FAST);
    env.weiban.set_flat_followers(true);
    let losses = losses_of("己", &[("zhang", "张三"), ("li", "李四")]);
    // Weiban still lists the losing staff member on the customer (the relation is half gone).
    env.weiban
        .set_followers(&losses[0].customer_id, &[("zhang", "张三")]);
    env.weiban
        .set_followers(&losses[1].customer_id, &[("li", "李四"), ("wang", "王五")]);
    env.weiban.add_losses(&losses);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = all_text(&env.robot);
    assert!(
        text.contains("己zhang") && !text.contains("仍由 张三"),
        "the losing staff member is no colleague: {text}"
    );
    assert!(
        !text.contains("己li"),
        "王五 still follows, so the route filters it: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staff_command_prints_the_directory() {
    let env = Env::new().await;
    org(&env);
    let out = env.cmd(&["staff"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("zhang") && text.contains("销售一部 / 华东组"),
        "{text}"
    );
    assert!(text.contains("已离职"), "{text}");
    let out = env
        .cmd(&["staff", "--department", "销售二部", "--json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ids: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["li", "wang"]);
    assert_eq!(rows[0]["email_known"], true);
}
