//! `mrr demo` (up to its ground-truth check): a second run reuses the simulated account only
//! when it is byte for byte what the simulator writes now; one written by another version of
//! the simulator is moved aside, never trusted (a stale ground truth once failed the demo).

mod common;

#[test]
fn the_demo_reuses_an_identical_account_and_moves_a_stale_one_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let demo = ["demo", "--skip-bigquery", "--no-window", "--customers", "12", "--months", "4"];
    let (code, _, err) = common::mrr(data, &demo);
    assert_eq!(code, 0, "{err}");
    let accounts = data.join("accounts");
    let account = std::fs::read_dir(&accounts).unwrap().next().unwrap().unwrap().path();

    let (code, _, err) = common::mrr(data, &demo);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("reusing"), "{err}");

    // A ground truth of other rules, as an older simulator wrote it.
    let truth = account.join("ground_truth.json");
    let text = std::fs::read_to_string(&truth).unwrap().replacen("\"mrr\": ", "\"mrr\": 1", 1);
    std::fs::write(&truth, &text).unwrap();
    let (code, _, err) = common::mrr(data, &demo);
    assert_eq!(code, 0, "a stale account must not fail the demo: {err}");
    assert!(err.contains("another version of the simulator: moved to"), "{err}");
    let names: Vec<String> =
        std::fs::read_dir(&accounts).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "the old account is kept aside: {names:?}");
    let aside = names.iter().find(|n| n.contains(".replaced-")).expect("moved aside");
    assert_eq!(std::fs::read_to_string(accounts.join(aside).join("ground_truth.json")).unwrap(), text);
}
