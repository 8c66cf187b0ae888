//! `check-config` and `run` on good and bad files, through the built binary.

use crate::harness::files::{repo, stderr, stdout, toml_files, vms};

const EXIT_CONFIG: i32 = 78;

#[test]
fn valid_fixtures_pass() {
    let files = toml_files(&repo().join("tests/fixtures/config/valid"));
    assert!(files.len() >= 3);
    for file in files {
        let out = vms(&["check-config", file.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            file.display(),
            stderr(&out)
        );
        assert!(stdout(&out).contains(": ok ("), "{}", stdout(&out));
    }
}

/// Each invalid fixture says on its first line which key must be named:
/// `# expect: cameras[2].url`.
#[test]
fn invalid_fixtures_exit_78_naming_the_key() {
    let files = toml_files(&repo().join("tests/fixtures/config/invalid"));
    assert!(files.len() >= 20);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let key = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks '# expect: KEY'", file.display()))
            .trim();
        let out = vms(&["check-config", file.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(EXIT_CONFIG),
            "{}: {err}",
            file.display()
        );
        let expected = format!(": {key}: ");
        assert!(
            err.contains(&expected),
            "{}: stderr should name {key:?}, got: {err}",
            file.display()
        );
        assert_eq!(err.lines().count(), 1, "one line per error: {err}");
    }
}

#[test]
fn run_refuses_a_bad_file_with_the_same_message() {
    let file = repo().join("tests/fixtures/config/invalid/duplicate-camera-id.toml");
    let check = vms(&["check-config", file.to_str().unwrap()]);
    let run = vms(&["--config", file.to_str().unwrap(), "run"]);
    assert_eq!(run.status.code(), Some(EXIT_CONFIG));
    assert_eq!(stderr(&run), stderr(&check));
}

#[test]
fn missing_file_is_a_config_error() {
    let out = vms(&["check-config", "/nonexistent/vms.toml"]);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG));
    assert!(
        stderr(&out).contains("/nonexistent/vms.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn demo_config_validates() {
    let demo = repo().join("etc/demo.toml");
    let out = vms(&["check-config", demo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("3 cameras"));
}

/// The shipped file points at /var/lib/vms, which only root (or the package's
/// `vms` user) may write: as root it validates; as anyone else the check must
/// refuse it because of exactly that.
#[test]
fn shipped_config_validates() {
    let shipped = repo().join("etc/vms.toml");
    let out = vms(&["check-config", shipped.to_str().unwrap()]);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).contains("0 cameras"));
    } else {
        assert_eq!(out.status.code(), Some(EXIT_CONFIG));
        assert!(stderr(&out).contains(": state.dir: "), "{}", stderr(&out));
    }
}

#[test]
fn version_names_the_commit() {
    let out = vms(&["--version"]);
    assert!(out.status.success());
    let v = stdout(&out);
    assert!(v.starts_with("vms-supervisor 0."), "{v}");
    assert!(v.contains("(commit "), "{v}");
}

#[test]
fn secrets_never_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "987654:SECRET-TOKEN\n").unwrap();
    let cfg = dir.path().join("vms.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = {:?}\n[recording]\npath = {:?}\n\
             [alerts.telegram]\nenabled = true\nchat_id = \"-1\"\nbot_token_file = {token:?}\n\
             [[cameras]]\nid = 1\nname = \"A\"\nurl = \"rtsp://admin:CAMPASS@10.0.0.5/x\"\n",
            dir.path().join("state"),
            dir.path().join("rec")
        ),
    )
    .unwrap();
    let out = vms(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("SECRET-TOKEN"));
    // A bad camera URL is reported without its password.
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = {:?}\n[recording]\npath = {:?}\n\
             [[cameras]]\nid = 1\nname = \"A\"\nurl = \"rtsp://admin:CAMPASS@10.0.0.5/a b\"\n",
            dir.path().join("state"),
            dir.path().join("rec")
        ),
    )
    .unwrap();
    let out = vms(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG));
    assert!(stderr(&out).contains("cameras[0].url"));
    assert!(!stderr(&out).contains("CAMPASS"), "{}", stderr(&out));
}

/// A box without MediaMTX is a configuration problem: exit 78 (systemd does
/// not retry) with the installation instructions.
#[test]
fn a_missing_mediamtx_binary_exits_78_with_instructions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vms.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mediamtx]\nbinary = \"/nonexistent/mediamtx\"\n[state]\ndir = {:?}\n[recording]\npath = {:?}\n\
             [api]\nlisten = \"127.0.0.1:{}\"\ntoken_file = {:?}\n",
            dir.path().join("state"),
            dir.path().join("rec"),
            crate::harness::free_port(),
            dir.path().join("token")
        ),
    )
    .unwrap();
    let out = vms(&["--config", cfg.to_str().unwrap(), "run"]);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/mediamtx"), "{err}");
    assert!(err.contains("/usr/local/bin/mediamtx"), "{err}");
}
