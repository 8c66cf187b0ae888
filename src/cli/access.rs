//! `vms-supervisor user ...` and `vms-supervisor audit`, straight on the
//! access database (`<state.dir>/access.db`), like `hold`: they work with
//! the daemon stopped (the first admin is made before the first start),
//! need the rights on the state directory (root or the `vms` user), and a
//! running daemon sees each change at its next request (it reads the user
//! on every one). Every change is audited with the actor `cli:<login>`.

use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::Context as _;
use chrono::Utc;

use crate::access::{self, password, AuditEntry, AuditFilter, Role, Store};
use crate::config::Config;

fn open(config: &Config) -> anyhow::Result<Store> {
    let path = access::db_path(config);
    let store = Store::open(&path).with_context(|| {
        format!(
            "opening {} (run as root or as the vms user)",
            path.display()
        )
    })?;
    give_to_state_owner(&path);
    Ok(store)
}

/// Run as root, the command creates files the daemon (user `vms`) must
/// still open: they go to the owner of the state directory.
fn give_to_state_owner(db: &std::path::Path) {
    use std::os::unix::fs::MetadataExt as _;
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let Some(meta) = db.parent().and_then(|d| std::fs::metadata(d).ok()) else {
        return;
    };
    let (uid, gid) = (
        nix::unistd::Uid::from_raw(meta.uid()),
        nix::unistd::Gid::from_raw(meta.gid()),
    );
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = nix::unistd::chown(std::path::Path::new(&p), Some(uid), Some(gid));
    }
}

/// Who runs the command, for the audit trail.
fn actor() -> String {
    let login = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::getuid()));
    format!("cli:{login}")
}

/// An audit row for another CLI command (`hold add`, `hold release`).
pub fn audit_other(
    config: &Config,
    action: &str,
    camera: u32,
    detail: String,
) -> anyhow::Result<()> {
    let mut store = open(config)?;
    store.audit(
        &AuditEntry::new(Utc::now(), &actor(), "cli", action)
            .camera(camera)
            .detail(detail),
    )?;
    Ok(())
}

fn audit(store: &mut Store, action: &str, detail: String) -> anyhow::Result<()> {
    store.audit(&AuditEntry::new(Utc::now(), &actor(), "cli", action).detail(detail))?;
    Ok(())
}

/// The cameras of `--cameras 1,2`.
pub fn parse_cameras(text: &str) -> Result<Vec<u32>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("{s:?} is not a camera id (a number)"))
        })
        .collect()
}

/// Echo off on a terminal, for as long as the guard lives.
struct NoEcho {
    saved: Option<libc::termios>,
}

impl NoEcho {
    fn new() -> NoEcho {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return NoEcho { saved: None };
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            t.c_lflag |= libc::ECHONL;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            NoEcho { saved: Some(saved) }
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the attributes read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

fn read_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The new password: asked twice without echo on a terminal, else the
/// first line of standard input (scripts: `printf '%s\n' "$PW" | ...`).
/// Never an argument (it would be in `ps` and the shell's history).
pub fn read_new_password(name: &str) -> anyhow::Result<String> {
    let pw = if std::io::stdin().is_terminal() {
        let _guard = NoEcho::new();
        eprint!("Password for {name}: ");
        std::io::stderr().flush()?;
        let a = read_line()?;
        eprint!("Again: ");
        std::io::stderr().flush()?;
        let b = read_line()?;
        anyhow::ensure!(a == b, "the two passwords differ; nothing was changed");
        a
    } else {
        read_line()?
    };
    password::check(&pw).map_err(anyhow::Error::msg)?;
    Ok(pw)
}

pub fn add(config: &Config, name: &str, role: &str, cameras: &str) -> anyhow::Result<String> {
    let role = Role::parse(role).map_err(anyhow::Error::msg)?;
    access::check_name(name).map_err(anyhow::Error::msg)?;
    let cameras = parse_cameras(cameras).map_err(anyhow::Error::msg)?;
    let mut store = open(config)?;
    anyhow::ensure!(store.user(name)?.is_none(), "user {name:?} already exists");
    let pw = read_new_password(name)?;
    store.add_user(name, role, &cameras, &password::hash(&pw)?, Utc::now())?;
    let scope = if cameras.is_empty() {
        "all cameras".to_string()
    } else {
        format!("cameras {}", join(&cameras))
    };
    audit(
        &mut store,
        "user_add",
        format!("{name} ({}, {scope})", role.as_str()),
    )?;
    Ok(format!("user {name} added: {}, {scope}\n", role.as_str()))
}

fn join(cameras: &[u32]) -> String {
    cameras
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn list(config: &Config) -> anyhow::Result<String> {
    let store = open(config)?;
    let users = store.users(Utc::now())?;
    if users.is_empty() {
        return Ok(
            "no users yet: add the first admin with `vms-supervisor user add NAME --role admin`\n"
                .into(),
        );
    }
    let mut out = String::from("NAME                 ROLE      CAMERAS     STATE\n");
    for u in users {
        let cams = if u.cameras.is_empty() {
            "all".to_string()
        } else {
            join(&u.cameras)
        };
        let state = match (u.disabled, u.locked_until) {
            (true, _) => "disabled".to_string(),
            (false, Some(t)) => format!("locked until {}", t.format("%Y-%m-%dT%H:%M:%SZ")),
            _ => "active".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<9} {:<11} {state}",
            u.name,
            u.role.as_str(),
            cams
        );
    }
    Ok(out)
}

pub fn passwd(config: &Config, name: &str) -> anyhow::Result<String> {
    let mut store = open(config)?;
    anyhow::ensure!(store.user(name)?.is_some(), "no user {name:?}");
    let pw = read_new_password(name)?;
    store.set_password(name, &password::hash(&pw)?, Utc::now())?;
    audit(&mut store, "user_passwd", name.to_string())?;
    Ok(format!(
        "password of {name} changed; its sessions were ended\n"
    ))
}

pub fn disable(config: &Config, name: &str, disabled: bool) -> anyhow::Result<String> {
    let mut store = open(config)?;
    store.set_disabled(name, disabled, Utc::now())?;
    let action = if disabled {
        "user_disable"
    } else {
        "user_enable"
    };
    audit(&mut store, action, name.to_string())?;
    Ok(if disabled {
        format!("user {name} disabled; its sessions were ended\n")
    } else {
        format!("user {name} enabled\n")
    })
}

pub fn remove(config: &Config, name: &str) -> anyhow::Result<String> {
    let mut store = open(config)?;
    store.remove_user(name)?;
    audit(&mut store, "user_remove", name.to_string())?;
    Ok(format!("user {name} removed\n"))
}

pub fn unlock(config: &Config, name: &str) -> anyhow::Result<String> {
    let mut store = open(config)?;
    let was = store.unlock(name, Utc::now())?;
    audit(&mut store, "user_unlock", name.to_string())?;
    Ok(if was {
        format!("user {name} unlocked\n")
    } else {
        format!("user {name} was not locked (its failed logins are forgotten)\n")
    })
}

/// `vms-supervisor audit`: the trail, newest first, in the box's time zone.
pub fn trail(config: &Config, filter: AuditFilter) -> anyhow::Result<String> {
    let store = open(config)?;
    let rows = store.audit_rows(&filter)?;
    let tz = config.timezone();
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("(no audit rows)\n");
    }
    for r in rows {
        let _ = writeln!(
            out,
            "{}  {:<16} {:<16} {:<15} {}{}",
            r.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
            r.actor,
            r.source,
            r.action,
            r.camera.map(|c| format!("camera {c} ")).unwrap_or_default(),
            r.detail
        );
    }
    Ok(out)
}
