//! The generated `mediamtx.yml`: golden files, and checks against the real
//! MediaMTX v1.20.1 default config and validation rules (docs/mediamtx.md §d).

use std::collections::BTreeSet;

use serde_norway::Value;
use vms_supervisor::config::Config;
use vms_supervisor::mediamtx::render;

use crate::harness::files::{mediamtx_reference, repo, stdout, vms};

fn config(file: &str) -> Config {
    Config::load(&repo().join(file)).unwrap()
}

/// Compares with `tests/golden/NAME`; `UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the rendered output at line {}:\n  golden:   {:?}\n  rendered: {:?}\n(UPDATE_GOLDEN=1 rewrites it after review)",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn golden_demo() {
    golden(
        "demo-mediamtx.yml",
        &render::render(&config("etc/demo.toml")),
    );
}

#[test]
fn golden_full() {
    golden(
        "full-mediamtx.yml",
        &render::render(&config("tests/fixtures/config/valid/full.toml")),
    );
}

#[test]
fn render_mediamtx_prints_the_same() {
    let demo = repo().join("etc/demo.toml");
    let out = vms(&["--config", demo.to_str().unwrap(), "render-mediamtx"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), render::render(&config("etc/demo.toml")));
}

fn yaml(text: &str) -> serde_norway::Mapping {
    match serde_norway::from_str::<Value>(text).unwrap() {
        Value::Mapping(m) => m,
        other => panic!("not a mapping: {other:?}"),
    }
}

fn keys(m: &serde_norway::Mapping) -> BTreeSet<String> {
    m.keys().map(|k| k.as_str().unwrap().to_string()).collect()
}

fn rendered_samples() -> Vec<(String, String)> {
    [
        "etc/demo.toml",
        "tests/fixtures/config/valid/full.toml",
        "tests/fixtures/config/valid/minimal.toml",
        "tests/fixtures/config/valid/no-cameras.toml",
    ]
    .iter()
    .map(|f| (f.to_string(), render::render(&config(f))))
    .collect()
}

/// MediaMTX rejects unknown keys and exits, so every key we emit must exist in
/// its own default config: globals at the top level, path keys in pathDefaults.
#[test]
fn every_rendered_key_exists_in_the_real_default_config() {
    let reference = yaml(&std::fs::read_to_string(mediamtx_reference("mediamtx.yml")).unwrap());
    let globals = keys(&reference);
    let path_keys = keys(reference["pathDefaults"].as_mapping().unwrap());
    let ice_keys: BTreeSet<String> = ["url", "username", "password", "clientOnly"]
        .map(String::from)
        .into();
    for (file, text) in rendered_samples() {
        let ours = yaml(&text);
        for key in keys(&ours) {
            assert!(
                globals.contains(&key),
                "{file}: global key {key:?} is not a MediaMTX key"
            );
        }
        for key in keys(ours["pathDefaults"].as_mapping().unwrap()) {
            assert!(
                path_keys.contains(&key),
                "{file}: pathDefaults key {key:?} unknown"
            );
        }
        for (name, conf) in ours["paths"].as_mapping().unwrap() {
            for key in keys(conf.as_mapping().unwrap()) {
                assert!(
                    path_keys.contains(&key),
                    "{file}: {name:?}.{key} is not a path key"
                );
            }
        }
        if let Some(list) = ours["webrtcICEServers2"].as_sequence() {
            for server in list {
                for key in keys(server.as_mapping().unwrap()) {
                    assert!(ice_keys.contains(&key), "{file}: ICE server key {key:?}");
                }
            }
        }
        // Same value types as the reference, so MediaMTX's decoder accepts them.
        for (key, value) in &ours {
            let reference_value = &reference[key.as_str().unwrap()];
            // An empty value in the reference (`authHTTPAddress:`) is a
            // string MediaMTX leaves empty.
            if reference_value.is_null() && value.is_string() {
                continue;
            }
            assert_eq!(
                std::mem::discriminant(&type_class(value)),
                std::mem::discriminant(&type_class(reference_value)),
                "{file}: {key:?} has type {value:?}, MediaMTX's default is {reference_value:?}"
            );
        }
    }
}

#[derive(Debug)]
enum Class {
    Scalar,
    List,
    Map,
    Null,
}

/// MediaMTX reads booleans, numbers and duration strings alike from scalars;
/// what must match is scalar vs list vs map.
fn type_class(v: &Value) -> Class {
    match v {
        Value::Sequence(_) => Class::List,
        Value::Mapping(_) => Class::Map,
        Value::Null => Class::Null,
        _ => Class::Scalar,
    }
}

fn go_duration_secs(s: &str) -> f64 {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        panic!("not a Go duration: {s}")
    };
    num.parse::<f64>().unwrap() * mult
}

/// docs/mediamtx.md §d: the rules MediaMTX applies to every path entry, with
/// `playback: yes`. A violation would make MediaMTX refuse the whole file.
#[test]
fn every_rendered_path_passes_mediamtx_record_validation() {
    for (file, text) in rendered_samples() {
        let ours = yaml(&text);
        assert_eq!(ours["playback"], Value::Bool(true), "{file}");
        assert_eq!(ours["api"], Value::Bool(true), "{file}");
        assert_eq!(ours["metrics"], Value::Bool(true), "{file}");
        for key in ["apiAddress", "metricsAddress", "playbackAddress"] {
            assert!(
                ours[key].as_str().unwrap().starts_with("127.0.0.1:"),
                "{file}: {key}"
            );
        }
        let mut entries = vec![("pathDefaults".to_string(), ours["pathDefaults"].clone())];
        for (name, conf) in ours["paths"].as_mapping().unwrap() {
            entries.push((name.as_str().unwrap().to_string(), conf.clone()));
        }
        for (name, conf) in entries {
            let get = |k: &str| {
                conf[k]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: {name}.{k} missing"))
                    .to_string()
            };
            let rp = get("recordPath");
            assert!(rp.contains("%path"), "{file}: {name}: {rp}");
            assert!(
                rp.contains("%s")
                    || ["%Y", "%m", "%d", "%H", "%M", "%S"]
                        .iter()
                        .all(|v| rp.contains(v)),
                "{file}: {name}: {rp}"
            );
            assert!(rp.contains("%f"), "{file}: {name}: playback needs %f: {rp}");
            assert!(
                rp.starts_with('/'),
                "{file}: {name}: recordPath must be absolute: {rp}"
            );
            assert_eq!(get("recordFormat"), "fmp4");
            let seg = go_duration_secs(&get("recordSegmentDuration"));
            assert!(
                seg <= 86_400.0,
                "{file}: {name}: maximum segment duration is 1 day"
            );
            let del = go_duration_secs(&get("recordDeleteAfter"));
            assert!(
                del == 0.0 || del >= seg,
                "{file}: {name}: recordDeleteAfter < segment"
            );
            if name != "pathDefaults" {
                assert!(name.starts_with("cam_"), "{file}: {name}");
                assert_eq!(conf["record"], Value::Bool(true), "{file}: {name}");
                assert_eq!(conf["sourceOnDemand"], Value::Bool(false), "{file}: {name}");
                assert_eq!(
                    seg, 60.0,
                    "{file}: {name}: the 60 s segments of docs/design.md §1.1"
                );
                assert_eq!(
                    del, 0.0,
                    "{file}: {name}: the daemon owns retention, not MediaMTX"
                );
            }
        }
        // docs/mediamtx.md §l.4: lowLatency HLS needs >= 7 segments, others >= 3.
        let variant = ours["hlsVariant"].as_str().unwrap();
        let count = ours["hlsSegmentCount"].as_u64().unwrap();
        assert!(
            count >= if variant == "lowLatency" { 7 } else { 3 },
            "{file}"
        );
    }
}

#[test]
fn the_designs_intent_is_kept() {
    let ours = yaml(&render::render(&config("etc/demo.toml")));
    assert_eq!(ours["hlsSegmentDuration"], Value::from("2s"));
    assert_eq!(ours["hlsSegmentCount"], Value::from(5));
    assert_eq!(ours["hlsVariant"], Value::from("fmp4"));
    assert_eq!(
        ours["hlsAllowOrigins"],
        serde_norway::from_str::<Value>("['*']").unwrap()
    );
    assert_eq!(
        ours["webrtcICEServers2"][0]["url"],
        Value::from("stun:stun.l.google.com:19302")
    );
    let paths = ours["paths"].as_mapping().unwrap();
    assert_eq!(
        keys(paths),
        ["cam_1", "cam_2", "cam_3"].map(String::from).into()
    );
    assert_eq!(
        ours["paths"]["cam_1"]["recordPath"],
        Value::from("/tmp/vms-demo/recordings/%path/%Y-%m-%d/%H-%M-%S-%f")
    );
}

/// The JSON sent to `/v3/config/paths/replace` is the YAML entry, so a path
/// re-created by the recovery ladder is the one in the file.
#[test]
fn path_json_matches_the_yaml_entry() {
    let c = config("tests/fixtures/config/valid/full.toml");
    let ours = yaml(&render::render(&c));
    for cam in &c.cameras {
        let from_yaml: serde_json::Value =
            serde_json::to_value(&ours["paths"][cam.path_name().as_str()]).unwrap();
        assert_eq!(render::path_json(&c, cam), from_yaml, "{}", cam.path_name());
    }
}

#[test]
fn atomic_write_replaces_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mediamtx.yml");
    vms_supervisor::durable::write_atomic(&target, b"one").unwrap();
    vms_supervisor::durable::write_atomic(&target, b"two").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"two");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}
