//! Runs the browser tests of `web/tests/` (node's test runner, headless Debian chromium via
//! playwright-core) against this build of the sim, inside `unshare -n` so that only the
//! loopback interface exists. Skipped, with the reason printed, when node, chromium or
//! `web/node_modules` (`npm ci` in web/, done by scripts/setup) are missing.

use std::path::Path;
use std::process::Command;

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn browser_plays_the_live_view_and_sees_every_fault() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let why = if !have("node", &["--version"]) {
        Some("node not found".to_string())
    } else if !Path::new(&chromium).exists() {
        Some(format!("{chromium} not found"))
    } else if !web.join("node_modules/playwright-core").exists() {
        Some("web/node_modules missing (npm ci in web/)".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        eprintln!("SKIPPED browser tests: {why}; scripts/setup installs what they need");
        return;
    }
    let script = "ip link set lo up && exec node --test --test-concurrency=1 tests/";
    let mut cmd = if have("unshare", &["-n", "true"]) {
        let mut c = Command::new("unshare");
        c.args(["-n", "sh", "-c", script]);
        c
    } else {
        // Without the right to make a network namespace (not root): the same tests on
        // the host's loopback.
        eprintln!("note: unshare -n is not permitted here; running on the host's loopback");
        let mut c = Command::new("sh");
        c.args(["-c", "exec node --test --test-concurrency=1 tests/"]);
        c
    };
    let out = cmd
        .current_dir(&web)
        .env("MTXSIM_BIN", env!("CARGO_BIN_EXE_mediamtx-sim"))
        .env("MTXSIM_CACHE_DIR", crate::harness::PICTURE_CACHE)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser tests failed:\n{text}\n{err}");
    // The tests ran (a skipped suite would also succeed).
    assert!(
        text.contains("# pass ") && !text.contains("# pass 0"),
        "{text}"
    );
    assert!(text.contains("# skipped 0"), "{text}");
}
