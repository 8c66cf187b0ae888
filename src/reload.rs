//! Hot reload of `vms.toml`: what a valid edit changes.
//!
//! [`diff`] is pure and table-tested. Adding or removing a camera touches
//! only that camera's path (MediaMTX applies path-only changes without
//! touching other paths, docs/mediamtx.md §f, so other cameras keep their segment
//! file). A few settings need MediaMTX restarted (a new binary, a new time
//! zone for its file names); a few need the daemon itself restarted (its
//! listeners and their certificate files, its state and recordings
//! directories) and are reported so. A renewed certificate in the same
//! files needs nothing: the HTTPS listener reads it again by itself.

use crate::config::Config;
use crate::mediamtx::render;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub added: Vec<u32>,
    pub removed: Vec<u32>,
    /// Same id, different URL, name or transport.
    pub changed: Vec<u32>,
    /// The generated mediamtx.yml differs (it must be rewritten).
    pub mediamtx_file: bool,
    /// MediaMTX must be restarted for the change to apply.
    pub mediamtx_restart: Vec<&'static str>,
    /// Keys that take effect only when the daemon restarts.
    pub daemon_restart: Vec<&'static str>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self == &ConfigDiff::default()
    }
}

/// The sections of vms.toml whose settings differ (by name only: the audit
/// trail says what was changed, never a value).
pub fn changed_sections(old: &Config, new: &Config) -> Vec<&'static str> {
    let differ =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let pairs: [(&'static str, &dyn std::fmt::Debug, &dyn std::fmt::Debug); 11] = [
        ("general", &old.general, &new.general),
        ("mediamtx", &old.mediamtx, &new.mediamtx),
        ("recording", &old.recording, &new.recording),
        ("monitor", &old.monitor, &new.monitor),
        ("storage", &old.storage, &new.storage),
        ("api", &old.api, &new.api),
        ("access", &old.access, &new.access),
        ("state", &old.state, &new.state),
        ("alerts", &old.alerts, &new.alerts),
        ("backup", &old.backup, &new.backup),
        ("cameras", &old.cameras, &new.cameras),
    ];
    pairs
        .into_iter()
        .filter(|(_, a, b)| differ(*a, *b))
        .map(|(name, ..)| name)
        .collect()
}

impl ConfigDiff {
    /// One line for the audit trail: the sections and cameras changed.
    pub fn audit_text(&self, sections: &[&str]) -> String {
        let ids = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut parts = vec![if sections.is_empty() {
            "no setting changed".to_string()
        } else {
            format!("sections {}", sections.join(", "))
        }];
        for (what, v) in [
            ("cameras added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if !v.is_empty() {
                parts.push(format!("{what} {}", ids(v)));
            }
        }
        if !self.daemon_restart.is_empty() {
            parts.push(format!(
                "needs a restart: {}",
                self.daemon_restart.join(", ")
            ));
        }
        parts.join("; ")
    }
}

pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    for cam in &new.cameras {
        match old.camera(cam.id) {
            None => d.added.push(cam.id),
            Some(prev) if prev != cam => d.changed.push(cam.id),
            Some(_) => {}
        }
    }
    for cam in &old.cameras {
        if new.camera(cam.id).is_none() {
            d.removed.push(cam.id);
        }
    }
    d.mediamtx_file = render::render(old) != render::render(new);
    if old.mediamtx.binary != new.mediamtx.binary {
        d.mediamtx_restart.push("mediamtx.binary");
    }
    if old.general.timezone != new.general.timezone {
        d.mediamtx_restart.push("general.timezone");
    }
    if old.api.listen != new.api.listen {
        d.daemon_restart.push("api.listen");
    }
    if old.api.token_file != new.api.token_file {
        d.daemon_restart.push("api.token_file");
    }
    if old.api.allowed_hosts != new.api.allowed_hosts {
        d.daemon_restart.push("api.allowed_hosts");
    }
    // The files' contents are read again when they change (a renewed
    // certificate, crate::tls); which files and where is read at start.
    if old.api.tls_cert != new.api.tls_cert {
        d.daemon_restart.push("api.tls_cert");
    }
    if old.api.tls_key != new.api.tls_key {
        d.daemon_restart.push("api.tls_key");
    }
    if old.api.tls_listen != new.api.tls_listen {
        d.daemon_restart.push("api.tls_listen");
    }
    // Sessions and lockouts are read at start.
    if format!("{:?}", old.access) != format!("{:?}", new.access) {
        d.daemon_restart.push("access");
    }
    if old.state.dir != new.state.dir {
        d.daemon_restart.push("state.dir");
    }
    if old.recording.path != new.recording.path {
        d.daemon_restart.push("recording.path");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str, cams: &[(u32, &str)]) -> Config {
        // `[recording]` lines join the section the helper already opens.
        let (recording, extra) = match extra.strip_prefix("[recording]\n") {
            Some(lines) => (lines, ""),
            None => ("", extra),
        };
        let mut s = format!(
            "[state]\ndir = \"/tmp/vms-reload-test\"\n[recording]\npath = \"/tmp/vms-reload-test/rec\"\n{recording}\n{extra}\n"
        );
        for (id, url) in cams {
            s.push_str(&format!(
                "[[cameras]]\nid = {id}\nname = \"Cam {id}\"\nurl = \"{url}\"\n"
            ));
        }
        Config::from_toml(&s).unwrap()
    }

    #[test]
    fn the_audit_line_names_sections_and_cameras_never_values() {
        let base = config("", &[(1, "rtsp://admin:segredo@a/1")]);
        let new = config(
            "[recording]\nretention_days = 45\n",
            &[(1, "rtsp://admin:outro@a/1"), (2, "rtsp://a/2")],
        );
        let sections = changed_sections(&base, &new);
        assert_eq!(sections, vec!["recording", "cameras"]);
        let text = diff(&base, &new).audit_text(&sections);
        assert_eq!(
            text,
            "sections recording, cameras; cameras added 2; changed 1"
        );
        assert!(!text.contains("segredo") && !text.contains("outro"));
        assert_eq!(
            diff(&base, &base).audit_text(&changed_sections(&base, &base)),
            "no setting changed"
        );
    }

    #[test]
    fn table() {
        let base = config("", &[(1, "rtsp://a/1"), (2, "rtsp://a/2")]);
        struct Case {
            name: &'static str,
            new: Config,
            want: ConfigDiff,
        }
        let cases = [
            Case {
                name: "identical",
                new: config("", &[(1, "rtsp://a/1"), (2, "rtsp://a/2")]),
                want: ConfigDiff::default(),
            },
            Case {
                name: "camera added",
                new: config(
                    "",
                    &[(1, "rtsp://a/1"), (2, "rtsp://a/2"), (3, "rtsp://a/3")],
                ),
                want: ConfigDiff {
                    added: vec![3],
                    mediamtx_file: true,
                    ..Default::default()
                },
            },
            Case {
                name: "camera removed",
                new: config("", &[(2, "rtsp://a/2")]),
                want: ConfigDiff {
                    removed: vec![1],
                    mediamtx_file: true,
                    ..Default::default()
                },
            },
            Case {
                name: "url changed",
                new: config("", &[(1, "rtsp://b/1"), (2, "rtsp://a/2")]),
                want: ConfigDiff {
                    changed: vec![1],
                    mediamtx_file: true,
                    ..Default::default()
                },
            },
            Case {
                name: "monitor timing only: nothing for MediaMTX",
                new: config(
                    "[monitor]\nstall_after = \"8s\"",
                    &[(1, "rtsp://a/1"), (2, "rtsp://a/2")],
                ),
                want: ConfigDiff::default(),
            },
            Case {
                name: "segment length: file rewritten, MediaMTX hot-reloads record keys",
                new: config(
                    "[recording]\nsegment_duration = \"120s\"",
                    &[(1, "rtsp://a/1"), (2, "rtsp://a/2")],
                ),
                want: ConfigDiff {
                    mediamtx_file: true,
                    ..Default::default()
                },
            },
            Case {
                name: "new binary needs a MediaMTX restart",
                new: config(
                    "[mediamtx]\nbinary = \"/opt/mediamtx\"",
                    &[(1, "rtsp://a/1"), (2, "rtsp://a/2")],
                ),
                want: ConfigDiff {
                    mediamtx_restart: vec!["mediamtx.binary"],
                    ..Default::default()
                },
            },
            Case {
                name: "time zone: MediaMTX names files in it",
                new: config(
                    "[general]\ntimezone = \"America/Manaus\"",
                    &[(1, "rtsp://a/1"), (2, "rtsp://a/2")],
                ),
                want: ConfigDiff {
                    mediamtx_restart: vec!["general.timezone"],
                    ..Default::default()
                },
            },
            Case {
                name: "listener needs a daemon restart",
                new: config(
                    "[api]\nlisten = \"127.0.0.1:8001\"",
                    &[(1, "rtsp://a/1"), (2, "rtsp://a/2")],
                ),
                // MediaMTX's authHTTPAddress is on the listener.
                want: ConfigDiff {
                    daemon_restart: vec!["api.listen"],
                    mediamtx_file: true,
                    ..Default::default()
                },
            },
            Case {
                name: "the HTTPS listener needs a daemon restart",
                new: config(
                    "[api]\ntls_listen = \"0.0.0.0:9443\"",
                    &[(1, "rtsp://a/1"), (2, "rtsp://a/2")],
                ),
                want: ConfigDiff {
                    daemon_restart: vec!["api.tls_listen"],
                    ..Default::default()
                },
            },
        ];
        for case in cases {
            assert_eq!(diff(&base, &case.new), case.want, "{}", case.name);
        }
    }
}
