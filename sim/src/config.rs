//! The configuration model: MediaMTX's YAML keys, their defaults, strict parsing and the
//! validation rules (docs/mediamtx.md, recording).
//!
//! The config is kept as JSON maps (one for global keys, one for `pathDefaults`, one per
//! `paths` entry holding only the keys the entry sets), because the control API reads and
//! patches it key by key. Values are normalised on the way in (`yes` → `true`, durations
//! → canonical strings), so comparing two configs is comparing maps.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The defaults of MediaMTX v1.20.1, with exactly the keys of the shipped `mediamtx.yml`
/// (the test `known_keys_match_reference` compares the two key sets).
const DEFAULTS_YAML: &str = r#"
logLevel: info
logDestinations: [stdout]
logStructured: false
logFile: mediamtx.log
sysLogPrefix: mediamtx
dumpPackets: false
readTimeout: 10s
writeTimeout: 10s
writeQueueSize: 512
udpMaxPayloadSize: 1452
udpReadBufferSize: 0
runOnConnect: ""
runOnConnectRestart: false
runOnDisconnect: ""
authMethod: internal
authInternalUsers:
  - {user: any, pass: "", ips: [], permissions: [{action: publish, path: ""}, {action: read, path: ""}, {action: playback, path: ""}]}
  - {user: any, pass: "", ips: ["127.0.0.1", "::1"], permissions: [{action: api}, {action: metrics}, {action: pprof}]}
authHTTPAddress: ""
authHTTPFingerprint: ""
authHTTPExclude: []
authJWTJWKS: ""
authJWTJWKSFingerprint: ""
authJWTClaimKey: mediamtx_permissions
authJWTExclude: []
authJWTIssuer: ""
authJWTAudience: ""
api: false
apiAddress: :9997
apiEncryption: false
apiServerKey: server.key
apiServerCert: server.crt
apiAllowOrigins: ["*"]
apiTrustedProxies: []
metrics: false
metricsAddress: :9998
metricsEncryption: false
metricsServerKey: server.key
metricsServerCert: server.crt
metricsAllowOrigins: ["*"]
metricsTrustedProxies: []
pprof: false
pprofAddress: :9999
pprofEncryption: false
pprofServerKey: server.key
pprofServerCert: server.crt
pprofAllowOrigins: ["*"]
pprofTrustedProxies: []
playback: false
playbackAddress: :9996
playbackEncryption: false
playbackServerKey: server.key
playbackServerCert: server.crt
playbackAllowOrigins: ["*"]
playbackTrustedProxies: []
rtsp: true
rtspTransports: [udp, multicast, tcp]
rtspEncryption: "no"
rtspAddress: :8554
rtspsAddress: :8322
rtpAddress: :8000
rtcpAddress: :8001
multicastIPRange: 224.1.0.0/16
multicastRTPPort: 8002
multicastRTCPPort: 8003
srtpAddress: :8004
srtcpAddress: :8005
multicastSRTPPort: 8006
multicastSRTCPPort: 8007
rtspServerKey: server.key
rtspServerCert: server.crt
rtspAuthMethods: [basic]
rtspTrustedProxies: []
rtmp: true
rtmpEncryption: "no"
rtmpAddress: :1935
rtmpsAddress: :1936
rtmpServerKey: server.key
rtmpServerCert: server.crt
rtmpTrustedProxies: []
hls: true
hlsAddress: :8888
hlsEncryption: false
hlsServerKey: server.key
hlsServerCert: server.crt
hlsAllowOrigins: ["*"]
hlsTrustedProxies: []
hlsAlwaysRemux: false
hlsVariant: lowLatency
hlsSegmentCount: 7
hlsSegmentDuration: 1s
hlsPartDuration: 200ms
hlsSegmentMaxSize: 50M
hlsDirectory: ""
hlsMuxerCloseAfter: 60s
hlsCDNSecret: ""
webrtc: true
webrtcAddress: :8889
webrtcEncryption: false
webrtcServerKey: server.key
webrtcServerCert: server.crt
webrtcAllowOrigins: ["*"]
webrtcTrustedProxies: []
webrtcLocalUDPAddress: :8189
webrtcLocalTCPAddress: ""
webrtcIPsFromInterfaces: true
webrtcIPsFromInterfacesList: []
webrtcAdditionalHosts: []
webrtcICEServers2: []
webrtcSTUNGatherTimeout: 5s
webrtcHandshakeTimeout: 10s
webrtcTrackGatherTimeout: 2s
srt: true
srtAddress: :8890
moq: true
moqHTTP2Address: :8892
moqHTTP3Address: :8892
moqQUICAddress: :8893
moqServerKey: auto.key
moqServerCert: auto.crt
moqAllowOrigins: ["*"]
moqTrustedProxies: []
pathDefaults:
  source: publisher
  sourceFingerprint: ""
  sourceOnDemand: false
  sourceOnDemandStartTimeout: 10s
  sourceOnDemandCloseAfter: 10s
  maxReaders: 0
  srtReadPassphrase: ""
  useAbsoluteTimestamp: false
  alwaysAvailable: false
  alwaysAvailableTracks: []
  alwaysAvailableFile: ""
  forward: []
  record: false
  recordPath: ./recordings/%path/%Y-%m-%d_%H-%M-%S-%f
  recordFormat: fmp4
  recordPartDuration: 1s
  recordMaxPartSize: 50M
  recordSegmentDuration: 1h
  recordDeleteAfter: 1d
  overridePublisher: true
  srtPublishPassphrase: ""
  rtspDemuxMpegts: false
  rtspTransport: automatic
  rtspAnyPort: false
  rtspRangeType: ""
  rtspRangeStart: ""
  rtspScale: ""
  rtspUDPSourcePortRange: [32768, 60999]
  rtpSDP: ""
  moqTransport: quic
  whepBearerToken: ""
  whepSTUNGatherTimeout: 5s
  whepHandshakeTimeout: 10s
  whepTrackGatherTimeout: 2s
  sourceRedirect: ""
  rpiCameraCamID: 0
  rpiCameraSecondary: false
  rpiCameraWidth: 1920
  rpiCameraHeight: 1080
  rpiCameraHFlip: false
  rpiCameraVFlip: false
  rpiCameraBrightness: 0
  rpiCameraContrast: 1
  rpiCameraSaturation: 1
  rpiCameraSharpness: 1
  rpiCameraExposure: normal
  rpiCameraAWB: auto
  rpiCameraAWBGains: [0, 0]
  rpiCameraDenoise: "off"
  rpiCameraShutter: 0
  rpiCameraMetering: centre
  rpiCameraGain: 0
  rpiCameraEV: 0
  rpiCameraROI: ""
  rpiCameraHDR: false
  rpiCameraTuningFile: ""
  rpiCameraMode: ""
  rpiCameraFPS: 30
  rpiCameraAfMode: continuous
  rpiCameraAfRange: normal
  rpiCameraAfSpeed: normal
  rpiCameraLensPosition: 0.0
  rpiCameraAfWindow: ""
  rpiCameraFlickerPeriod: 0
  rpiCameraTextOverlayEnable: false
  rpiCameraTextOverlay: "%Y-%m-%d %H:%M:%S - MediaMTX"
  rpiCameraCodec: auto
  rpiCameraIDRPeriod: 60
  rpiCameraBitrate: 5000000
  rpiCameraH264Profile: auto
  rpiCameraH264Level: "4.1"
  rpiCameraMJPEGQuality: 60
  runOnInit: ""
  runOnInitRestart: false
  runOnDemand: ""
  runOnDemandRestart: false
  runOnDemandStartTimeout: 10s
  runOnDemandCloseAfter: 10s
  runOnUnDemand: ""
  runOnAvailable: ""
  runOnAvailableRestart: false
  runOnUnavailable: ""
  runOnOnline: ""
  runOnOnlineRestart: false
  runOnOffline: ""
  runOnRead: ""
  runOnReadRestart: false
  runOnUnread: ""
  runOnRecordSegmentCreate: ""
  runOnRecordSegmentComplete: ""
"#;

/// Keys whose values are durations (Go duration strings, plus MediaMTX's `d` suffix).
const DURATION_KEYS: &[&str] = &[
    "readTimeout",
    "writeTimeout",
    "hlsSegmentDuration",
    "hlsPartDuration",
    "hlsMuxerCloseAfter",
    "webrtcSTUNGatherTimeout",
    "webrtcHandshakeTimeout",
    "webrtcTrackGatherTimeout",
    "sourceOnDemandStartTimeout",
    "sourceOnDemandCloseAfter",
    "recordPartDuration",
    "recordSegmentDuration",
    "recordDeleteAfter",
    "whepSTUNGatherTimeout",
    "whepHandshakeTimeout",
    "whepTrackGatherTimeout",
    "runOnDemandStartTimeout",
    "runOnDemandCloseAfter",
];

/// Path keys whose change only restarts the recorder (docs/mediamtx.md, config reload); `forward` and the
/// runtime-adjustable `rpiCamera*` keys are hot as well but have no effect in the sim.
pub const RECORD_KEYS: &[&str] = &[
    "record",
    "recordPath",
    "recordFormat",
    "recordPartDuration",
    "recordMaxPartSize",
    "recordSegmentDuration",
    "recordDeleteAfter",
    "forward",
];

/// Global keys whose change restarts the path manager, hence every path (docs/mediamtx.md, config reload).
const PATH_MANAGER_KEYS: &[&str] = &[
    "logLevel",
    "logDestinations",
    "logFile",
    "logStructured",
    "sysLogPrefix",
    "readTimeout",
    "writeTimeout",
    "writeQueueSize",
    "udpReadBufferSize",
    "udpMaxPayloadSize",
    "rtspAddress",
    "rtspEncryption",
    "dumpPackets",
];

struct Defaults {
    global: Map<String, Value>,
    path: Map<String, Value>,
}

fn defaults() -> &'static Defaults {
    static D: OnceLock<Defaults> = OnceLock::new();
    D.get_or_init(|| {
        let v: Value = serde_norway::from_str(DEFAULTS_YAML).expect("embedded defaults");
        let mut global = v.as_object().expect("map").clone();
        let path = match global.remove("pathDefaults") {
            Some(Value::Object(m)) => m,
            _ => unreachable!(),
        };
        let mut global_n = Map::new();
        for (k, v) in global {
            let n = normalize(&k, v.clone(), &v).expect("default");
            global_n.insert(k, n);
        }
        let mut path_n = Map::new();
        for (k, v) in path {
            let n = normalize(&k, v.clone(), &v).expect("default");
            path_n.insert(k, n);
        }
        Defaults {
            global: global_n,
            path: path_n,
        }
    })
}

#[cfg(test)]
/// The global keys the sim knows (those of the reference `mediamtx.yml`, without
/// `pathDefaults` and `paths`).
pub fn global_keys() -> Vec<String> {
    defaults().global.keys().cloned().collect()
}

#[cfg(test)]
/// The per-path keys the sim knows (those of `pathDefaults` in the reference file).
pub fn path_keys() -> Vec<String> {
    defaults().path.keys().cloned().collect()
}

/// A whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Conf {
    /// Every global key, with its effective value.
    pub global: Map<String, Value>,
    /// Every path key, with its effective default.
    pub path_defaults: Map<String, Value>,
    /// Path entries by name, holding only the keys each entry sets itself.
    pub paths: BTreeMap<String, Map<String, Value>>,
}

impl Default for Conf {
    fn default() -> Self {
        Conf {
            global: defaults().global.clone(),
            path_defaults: defaults().path.clone(),
            paths: BTreeMap::new(),
        }
    }
}

/// `all`, `all_others` and `~regexp` entries match names; they create no path object.
pub fn is_regexp_name(name: &str) -> bool {
    name == "all" || name == "all_others" || name.starts_with('~')
}

pub fn check_path_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("invalid path name '': cannot be empty".into());
    }
    if is_regexp_name(name) {
        return Ok(());
    }
    if name.starts_with('/') {
        return Err(format!(
            "invalid path name '{name}': can't begin with a slash"
        ));
    }
    if name.ends_with('/') {
        return Err(format!(
            "invalid path name '{name}': can't end with a slash"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
    {
        return Err(format!(
            "invalid path name '{name}': can contain only alphanumeric characters, underscore, dot, minus, slash"
        ));
    }
    Ok(())
}

impl Conf {
    /// Parses a YAML document, applies the `RTSP_*`/`MTX_*` environment overrides of the
    /// process (docs/mediamtx.md, process), and validates the result. Used at startup and on reloads.
    pub fn load(text: &str) -> Result<Conf, String> {
        let mut c = Conf::parse(text)?;
        c.apply_env(std::env::vars())?;
        c.validate()?;
        Ok(c)
    }

    /// Parses and validates a YAML document (no environment).
    #[cfg(test)]
    pub fn from_yaml(text: &str) -> Result<Conf, String> {
        let c = Conf::parse(text)?;
        c.validate()?;
        Ok(c)
    }

    /// Environment overrides: `MTX_<KEY>` for global keys, `MTX_PATHDEFAULTS_<KEY>`,
    /// and `MTX_PATHS_<NAME>_<KEY>` (the name is lower-cased and cut at the first `_`,
    /// as MediaMTX does). The legacy `RTSP_` prefix first, then `MTX_` (which wins).
    /// Unknown variables are ignored; lists are comma-separated.
    pub fn apply_env(
        &mut self,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<(), String> {
        let vars: Vec<(String, String)> = vars.collect();
        for prefix in ["RTSP_", "MTX_"] {
            for (k, v) in vars.iter().filter(|(k, _)| k.starts_with(prefix)) {
                let rest = &k[prefix.len()..];
                if let Some(key) = rest.strip_prefix("PATHDEFAULTS_") {
                    if let Some((name, def)) = find_key(&defaults().path, key) {
                        let val = env_value(k, v, &name, def)?;
                        self.path_defaults.insert(name, val);
                    }
                } else if let Some(r) = rest.strip_prefix("PATHS_") {
                    let (name, key) = r.split_once('_').unwrap_or((r, ""));
                    let entry = self.paths.entry(name.to_lowercase()).or_default();
                    if let Some((kname, def)) = find_key(&defaults().path, key) {
                        let val = env_value(k, v, &kname, def)?;
                        entry.insert(kname, val);
                    }
                } else if let Some((name, def)) = find_key(&defaults().global, rest) {
                    let val = env_value(k, v, &name, def)?;
                    self.global.insert(name, val);
                }
            }
        }
        Ok(())
    }

    fn parse(text: &str) -> Result<Conf, String> {
        let doc: Value = if text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())?
        };
        let mut top = match doc {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return Err("json: cannot unmarshal into Go value of type conf.Conf".into()),
        };
        let mut conf = Conf::default();
        let path_defaults = top.remove("pathDefaults");
        let paths = top.remove("paths");
        patch_map(&mut conf.global, top, &defaults().global)?;
        if let Some(pd) = path_defaults {
            patch_map(&mut conf.path_defaults, as_object(pd)?, &defaults().path)?;
        }
        if let Some(p) = paths {
            for (name, entry) in as_object(p)? {
                let mut m = Map::new();
                patch_map(&mut m, as_object(entry)?, &defaults().path)?;
                conf.paths.insert(name, m);
            }
        }
        Ok(conf)
    }

    /// The effective configuration of a path entry (defaults overlaid by the entry).
    pub fn path_conf(&self, name: &str) -> Option<Map<String, Value>> {
        let entry = self.paths.get(name)?;
        let mut m = self.path_defaults.clone();
        for (k, v) in entry {
            m.insert(k.clone(), v.clone());
        }
        Some(m)
    }

    /// Names of the entries that get a path object (not regexps).
    pub fn static_names(&self) -> Vec<String> {
        self.paths
            .keys()
            .filter(|n| !is_regexp_name(n))
            .cloned()
            .collect()
    }

    /// The config entry that matches a path name, if any: the exact name first, then the
    /// `~regexp` entries (in key order), then `all`/`all_others`.
    pub fn matching_entry(&self, name: &str) -> Option<String> {
        if self.paths.contains_key(name) && !is_regexp_name(name) {
            return Some(name.to_string());
        }
        let by_regexp = self.paths.keys().find(|k| {
            k.strip_prefix('~')
                .and_then(|p| crate::regex::Regex::new(p).ok())
                .is_some_and(|r| r.is_match(name))
        });
        by_regexp
            .or_else(|| {
                self.paths
                    .keys()
                    .find(|k| k.as_str() == "all" || k.as_str() == "all_others")
            })
            .cloned()
    }

    pub fn validate(&self) -> Result<(), String> {
        for (k, name) in [
            ("api", "apiAddress' must be set when API is enabled"),
            (
                "metrics",
                "metricsAddress' must be set when metrics are enabled",
            ),
            ("pprof", "pprofAddress' must be set when pprof is enabled"),
            (
                "playback",
                "playbackAddress' must be set when playback is enabled",
            ),
        ] {
            if self.bool(k) && self.str(&format!("{k}Address")).is_empty() {
                return Err(format!("'{name}"));
            }
        }
        if let Some(Value::Array(servers)) = self.global.get("webrtcICEServers2") {
            for srv in servers {
                let Value::Object(m) = srv else {
                    return Err(type_err("webrtcICEServers2", srv, "conf.WebRTCICEServer"));
                };
                for k in m.keys() {
                    if !["url", "username", "password", "clientOnly"].contains(&k.as_str()) {
                        return Err(format!("json: unknown field \"{k}\""));
                    }
                }
            }
        }
        let level = self.str("logLevel");
        if !["error", "warn", "info", "debug"].contains(&level) {
            return Err(format!("invalid log level: {level}"));
        }
        validate_auth(self)?;
        for name in self.paths.keys() {
            check_path_name(name)?;
            if let Some(p) = name.strip_prefix('~') {
                crate::regex::Regex::new(p)
                    .map_err(|e| format!("invalid regular expression: {e}"))?;
            }
        }
        let playback = self.bool("playback");
        check_path_entry(&self.path_defaults, playback)?;
        for name in self.paths.keys() {
            let pc = self.path_conf(name).unwrap();
            check_path_entry(&pc, playback)?;
        }
        Ok(())
    }

    pub fn bool(&self, key: &str) -> bool {
        self.global
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn str(&self, key: &str) -> &str {
        self.global.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// A list of strings (`hlsAllowOrigins: ['*']`); a plain string is a one-item list.
    pub fn str_list(&self, key: &str) -> Vec<String> {
        match self.global.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec![],
        }
    }

    pub fn duration(&self, key: &str) -> Duration {
        parse_duration(self.str(key)).unwrap_or_default()
    }

    /// True if a global key that restarts the path manager differs.
    pub fn path_manager_changed(&self, other: &Conf) -> bool {
        PATH_MANAGER_KEYS
            .iter()
            .any(|k| self.global.get(*k) != other.global.get(*k))
            || self.global.iter().any(|(k, v)| {
                k.starts_with("auth") && k != "authInternalUsers" && other.global.get(k) != Some(v)
            })
    }
}

/// Validation of the auth keys, as MediaMTX's config loader (docs/mediamtx.md §b2), plus
/// the stand-in's own refusal of `jwt`.
fn validate_auth(conf: &Conf) -> Result<(), String> {
    let method = conf.str("authMethod");
    if !["internal", "http", "jwt"].contains(&method) {
        return Err(format!("invalid authMethod: '{method}'"));
    }
    let check_perms = |v: Option<&Value>| -> Result<(), String> {
        let Some(Value::Array(perms)) = v else {
            return Ok(());
        };
        for p in perms {
            let Value::Object(m) = p else {
                return Err(
                    "json: cannot unmarshal into Go value of type conf.AuthInternalUserPermission"
                        .into(),
                );
            };
            for k in m.keys() {
                if k != "action" && k != "path" {
                    return Err(format!("json: unknown field \"{k}\""));
                }
            }
            let action = m.get("action").and_then(Value::as_str).unwrap_or("");
            if !["publish", "read", "playback", "api", "metrics", "pprof"].contains(&action) {
                return Err(format!("invalid auth action: '{action}'"));
            }
        }
        Ok(())
    };
    check_perms(conf.global.get("authHTTPExclude"))?;
    check_perms(conf.global.get("authJWTExclude"))?;
    if let Some(Value::Array(users)) = conf.global.get("authInternalUsers") {
        for u in users {
            if let Value::Object(m) = u {
                for k in m.keys() {
                    if !["user", "pass", "ips", "permissions"].contains(&k.as_str()) {
                        return Err(format!("json: unknown field \"{k}\""));
                    }
                }
                check_perms(m.get("permissions"))?;
            }
        }
    }
    let digest = conf
        .str_list("rtspAuthMethods")
        .iter()
        .any(|m| m == "digest");
    match method {
        "internal" => {
            if let Some(Value::Array(users)) = conf.global.get("authInternalUsers") {
                for u in users {
                    let user = u.get("user").and_then(Value::as_str).unwrap_or("");
                    let pass = u.get("pass").and_then(Value::as_str).unwrap_or("");
                    if user.is_empty() {
                        return Err("empty usernames are not supported".into());
                    }
                    if user == "any" && !pass.is_empty() {
                        return Err("using a password with 'any' user is not supported".into());
                    }
                }
            }
        }
        "http" => {
            let a = conf.str("authHTTPAddress");
            if a.is_empty() {
                return Err("'authHTTPAddress' is empty".into());
            }
            if !a.starts_with("http://") && !a.starts_with("https://") {
                return Err("'externalAuthenticationURL' must be a HTTP URL".into());
            }
            if a.starts_with("https://") {
                return Err("'authHTTPAddress': https is not supported by mediamtx-sim".into());
            }
        }
        _ => {
            let j = conf.str("authJWTJWKS");
            if j.is_empty() {
                return Err("'authJWTJWKS' is empty".into());
            }
            if !j.starts_with("http://") && !j.starts_with("https://") {
                return Err("'authJWTJWKS' must be a HTTP URL".into());
            }
            if conf.str("authJWTClaimKey").is_empty() {
                return Err("'authJWTClaimKey' is empty".into());
            }
            return Err("authMethod 'jwt' is not supported by mediamtx-sim".into());
        }
    }
    if digest && method != "internal" {
        return Err(
            "when RTSP digest is enabled, the only supported auth method is 'internal'".into(),
        );
    }
    Ok(())
}

/// The key whose upper-cased name is `upper`, with its default.
fn find_key<'a>(known: &'a Map<String, Value>, upper: &str) -> Option<(String, &'a Value)> {
    known
        .iter()
        .find(|(k, _)| k.to_uppercase() == upper)
        .map(|(k, v)| (k.clone(), v))
}

/// Converts an environment string to the shape of the key's default.
fn env_value(var: &str, v: &str, key: &str, def: &Value) -> Result<Value, String> {
    let bad = || format!("invalid value for {var}: '{v}'");
    let raw = match def {
        Value::Bool(_) => Value::Bool(match v.to_lowercase().as_str() {
            "yes" | "true" | "on" => true,
            "no" | "false" | "off" => false,
            _ => return Err(bad()),
        }),
        Value::Number(_) => {
            let n: serde_json::Number = v.parse().map_err(|_| bad())?;
            Value::Number(n)
        }
        Value::Array(items) => {
            if v.is_empty() {
                Value::Array(vec![])
            } else if items.first().is_some_and(Value::is_number) {
                let mut out = Vec::new();
                for p in v.split(',') {
                    let n: serde_json::Number = p.trim().parse().map_err(|_| bad())?;
                    out.push(Value::Number(n));
                }
                Value::Array(out)
            } else {
                Value::Array(v.split(',').map(|p| Value::String(p.to_string())).collect())
            }
        }
        _ => Value::String(v.to_string()),
    };
    normalize(key, raw, def)
}

fn check_path_entry(pc: &Map<String, Value>, playback: bool) -> Result<(), String> {
    let rp = pc.get("recordPath").and_then(Value::as_str).unwrap_or("");
    if !rp.contains("%path") {
        return Err("'recordPath' must contain %path".into());
    }
    if !rp.contains("%s")
        && !["%Y", "%m", "%d", "%H", "%M", "%S"]
            .iter()
            .all(|v| rp.contains(v))
    {
        return Err("'recordPath' must contain either %s or %Y %m %d %H %M %S".into());
    }
    if playback && !rp.contains("%f") {
        return Err("'recordPath' must contain %f".into());
    }
    let seg = path_duration(pc, "recordSegmentDuration");
    if seg > Duration::from_secs(86400) {
        return Err("maximum segment duration is 1 day".into());
    }
    let del = path_duration(pc, "recordDeleteAfter");
    if !del.is_zero() && del < seg {
        return Err("'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'".into());
    }
    let fmt = pc.get("recordFormat").and_then(Value::as_str).unwrap_or("");
    if fmt != "fmp4" && fmt != "mpegts" {
        return Err(format!("invalid record format '{fmt}'"));
    }
    Ok(())
}

pub fn path_duration(pc: &Map<String, Value>, key: &str) -> Duration {
    pc.get(key)
        .and_then(Value::as_str)
        .and_then(|s| parse_duration(s).ok())
        .unwrap_or_default()
}

pub fn path_bool(pc: &Map<String, Value>, key: &str) -> bool {
    pc.get(key).and_then(Value::as_bool).unwrap_or(false)
}

pub fn path_str<'a>(pc: &'a Map<String, Value>, key: &str) -> &'a str {
    pc.get(key).and_then(Value::as_str).unwrap_or("")
}

fn as_object(v: Value) -> Result<Map<String, Value>, String> {
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err("json: cannot unmarshal non-object into Go struct".into()),
    }
}

/// Applies `src` onto `dst`, rejecting keys that `known` does not have, normalising values.
pub fn patch_map(
    dst: &mut Map<String, Value>,
    src: Map<String, Value>,
    known: &Map<String, Value>,
) -> Result<(), String> {
    for (k, v) in src {
        let Some(def) = known.get(&k) else {
            return Err(format!("json: unknown field \"{k}\""));
        };
        let n = normalize(&k, v, def)?;
        dst.insert(k, n);
    }
    Ok(())
}

/// Patches global keys, as `/v3/config/global/patch` does.
pub fn patch_global(dst: &mut Map<String, Value>, src: Map<String, Value>) -> Result<(), String> {
    patch_map(dst, src, &defaults().global)
}

/// Patches path keys, as the `/v3/config/paths/*` and `pathdefaults` endpoints do.
pub fn patch_path(dst: &mut Map<String, Value>, src: Map<String, Value>) -> Result<(), String> {
    patch_map(dst, src, &defaults().path)
}

fn type_err(key: &str, got: &Value, want: &str) -> String {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("json: cannot unmarshal {kind} into Go struct field .{key} of type {want}")
}

/// Normalises a value to the shape of the key's default.
fn normalize(key: &str, v: Value, def: &Value) -> Result<Value, String> {
    if DURATION_KEYS.contains(&key) {
        return match &v {
            Value::String(s) => {
                let d = parse_duration(s).map_err(|e| format!("{e} ({key})"))?;
                Ok(Value::String(format_duration(d)))
            }
            Value::Null => Ok(Value::String(String::new())),
            _ => Err(type_err(key, &v, "conf.Duration")),
        };
    }
    match def {
        Value::Bool(_) => match &v {
            Value::Bool(_) => Ok(v),
            Value::String(s) => match s.as_str() {
                "yes" | "true" | "on" => Ok(Value::Bool(true)),
                "no" | "false" | "off" => Ok(Value::Bool(false)),
                _ => Err(type_err(key, &v, "bool")),
            },
            Value::Null => Ok(Value::Bool(false)),
            _ => Err(type_err(key, &v, "bool")),
        },
        Value::String(_) => match v {
            Value::String(_) => Ok(v),
            Value::Null => Ok(Value::String(String::new())),
            Value::Bool(b) => Ok(Value::String(if b { "yes" } else { "no" }.into())),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            other => Err(type_err(key, &other, "string")),
        },
        Value::Number(_) => match v {
            Value::Number(_) => Ok(v),
            Value::Null => Ok(Value::from(0)),
            other => Err(type_err(key, &other, "number")),
        },
        Value::Array(_) => match v {
            Value::Array(_) => Ok(v),
            Value::Null => Ok(Value::Array(vec![])),
            other => Err(type_err(key, &other, "array")),
        },
        _ => Ok(v),
    }
}

/// Parses a Go duration (`1h30m`, `200ms`, `1.5s`) or a MediaMTX day count (`1d`).
/// An empty string is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration \"{s}\"");
    if s.is_empty() || s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos((total * 1e9).round() as u64))
}

/// Formats a duration as MediaMTX's API does: whole days as `Nd`, zero as `""`, otherwise
/// Go's `time.Duration.String()`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos() as u64;
    if ns == 0 {
        return String::new();
    }
    const DAY: u64 = 86_400_000_000_000;
    if ns % DAY == 0 {
        return format!("{}d", ns / DAY);
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", trim_frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim_frac(ns, 1_000_000));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s_ns = ns % 60_000_000_000;
    let s = format!("{}s", trim_frac(s_ns, 1_000_000_000));
    if h > 0 {
        format!("{h}h{m}m{s}")
    } else if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

fn trim_frac(v: u64, unit: u64) -> String {
    let int = v / unit;
    let frac = v % unit;
    if frac == 0 {
        return int.to_string();
    }
    let width = unit.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sim knows exactly the keys of the shipped `mediamtx.yml`, and accepts it.
    #[test]
    fn known_keys_match_reference() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/mediamtx/mediamtx.yml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let v: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let m = v.as_mapping().unwrap();
        let mut global: Vec<String> = m
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .filter(|k| k != "pathDefaults" && k != "paths")
            .collect();
        let mut path: Vec<String> = m["pathDefaults"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        global.sort();
        path.sort();
        let (mut g, mut p) = (global_keys(), path_keys());
        g.sort();
        p.sort();
        assert_eq!(g, global);
        assert_eq!(p, path);
        // Accepted, and equal to the built-in defaults (auth users aside: the file has
        // nulls where the defaults have empty strings).
        let c = Conf::from_yaml(&text).unwrap();
        let d = Conf::default();
        for (k, v) in &d.global {
            if k != "authInternalUsers" {
                assert_eq!(&c.global[k], v, "{k}");
            }
        }
        assert_eq!(c.path_defaults, d.path_defaults);
        assert_eq!(c.paths.keys().collect::<Vec<_>>(), ["all_others"]);
    }

    #[test]
    fn env_overrides() {
        let mut c = Conf::parse("paths:\n  cam:\n").unwrap();
        let vars = [
            ("MTX_API", "yes"),
            ("RTSP_APIADDRESS", "1.2.3.4:1"),
            ("MTX_APIADDRESS", "127.0.0.1:9"),
            ("MTX_READTIMEOUT", "3s"),
            ("MTX_RTSPTRANSPORTS", "tcp,udp"),
            ("MTX_PATHDEFAULTS_RECORD", "true"),
            ("MTX_PATHS_CAM_1_SOURCE", "rtsp://x/y"),
            ("MTX_NOSUCHKEY", "1"),
            ("MTXSIM_CONTROL", "x"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        c.apply_env(vars.into_iter()).unwrap();
        assert!(c.bool("api"));
        assert_eq!(c.str("apiAddress"), "127.0.0.1:9");
        assert_eq!(c.str("readTimeout"), "3s");
        assert_eq!(
            c.global["rtspTransports"],
            serde_json::json!(["tcp", "udp"])
        );
        assert_eq!(c.path_defaults["record"], Value::Bool(true));
        // The name is cut at the first `_`: `cam`, key `1_SOURCE` (unknown, ignored).
        assert_eq!(c.paths["cam"], Map::new());
        let err = Conf::default()
            .apply_env([("MTX_API".to_string(), "maybe".to_string())].into_iter())
            .unwrap_err();
        assert_eq!(err, "invalid value for MTX_API: 'maybe'");
    }

    #[test]
    fn durations_round_trip() {
        for (i, o) in [
            ("10s", "10s"),
            ("1h", "1h0m0s"),
            ("2160h", "90d"),
            ("1d", "1d"),
            ("0s", ""),
            ("200ms", "200ms"),
            ("90s", "1m30s"),
            ("1.5s", "1.5s"),
        ] {
            assert_eq!(format_duration(parse_duration(i).unwrap()), o, "{i}");
        }
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn unknown_keys_rejected_everywhere() {
        assert_eq!(
            Conf::from_yaml("foo: 1").unwrap_err(),
            "json: unknown field \"foo\""
        );
        assert_eq!(
            Conf::from_yaml("pathDefaults:\n  hls: yes").unwrap_err(),
            "json: unknown field \"hls\""
        );
        assert_eq!(
            Conf::from_yaml("paths:\n  cam:\n    webrtc: yes").unwrap_err(),
            "json: unknown field \"webrtc\""
        );
    }

    #[test]
    fn ice_servers_shape() {
        assert!(Conf::from_yaml("webrtcICEServers2:\n  - url: stun:x:1\n").is_ok());
        assert_eq!(
            Conf::from_yaml("webrtcICEServers2:\n  - urls: [stun:x:1]\n").unwrap_err(),
            "json: unknown field \"urls\""
        );
    }

    #[test]
    fn yes_no_booleans() {
        let c = Conf::from_yaml("api: yes\nmetrics: no\npaths:\n  c:\n    record: yes").unwrap();
        assert!(c.bool("api"));
        assert!(!c.bool("metrics"));
        assert_eq!(c.path_conf("c").unwrap()["record"], Value::Bool(true));
    }

    #[test]
    fn record_path_rules() {
        let e = |y: &str| Conf::from_yaml(y).unwrap_err();
        assert_eq!(
            e("pathDefaults:\n  recordPath: /r/%Y-%m-%d/%H-%M-%S"),
            "'recordPath' must contain %path"
        );
        assert_eq!(
            e("paths:\n  c:\n    recordPath: /r/%path/%Y"),
            "'recordPath' must contain either %s or %Y %m %d %H %M %S"
        );
        assert_eq!(
            e("playback: yes\npathDefaults:\n  recordPath: /r/%path/%s"),
            "'recordPath' must contain %f"
        );
        assert_eq!(
            e("pathDefaults:\n  recordSegmentDuration: 25h\n  recordDeleteAfter: 0s"),
            "maximum segment duration is 1 day"
        );
        assert_eq!(
            e("pathDefaults:\n  recordSegmentDuration: 2h\n  recordDeleteAfter: 1h"),
            "'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'"
        );
        assert_eq!(
            e("pathDefaults:\n  recordFormat: mkv"),
            "invalid record format 'mkv'"
        );
        assert!(Conf::from_yaml("pathDefaults:\n  recordPath: /r/%path/%s").is_ok());
    }
}
