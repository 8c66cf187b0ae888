//! The life of the MediaMTX process, as a synchronous state machine.
//!
//! MediaMTX exits with code 0 after a fatal reload error, can hang, and leaks
//! memory over days (docs/mediamtx.md §k). The rules here:
//!
//! * Any exit we did not ask for is a failure, whatever the code.
//! * Restarts back off: `restart_delay`, doubling, capped at
//!   `restart_max_delay`, reset after a run of `healthy_after`.
//! * More than `storm_restarts` restarts within `storm_window` is a restart
//!   storm: one Critical incident (not one per restart), restarts go on at the
//!   capped delay.
//! * No answer from `/v3/info` within `startup_timeout` after a start, or
//!   `hang_probes` failed probes in a row once running, is a hang: SIGTERM,
//!   then SIGKILL after `stop_timeout`, then a restart.
//! * RSS above `memory_limit` for `memory_limit_for`: a Warning and a graceful
//!   restart (segments are finalized).
//! * MediaMTX outlives the daemon. A daemon that starts again adopts the
//!   MediaMTX it finds running ([`ProcessMachine::adopt`]): no spawn, the
//!   same start-up probe; an adopted MediaMTX that does not answer within
//!   `startup_timeout` is a hang like any other (stopped, then restarted
//!   within the backoff). On a restart of the daemon MediaMTX is left
//!   running ([`Event::Detach`]); on a stop for good it is stopped
//!   ([`Event::Shutdown`]).
//!
//! The driver feeds events and executes the returned actions; it never
//! decides anything itself. Time comes in as an argument so tests run a day of
//! behaviour in microseconds.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Mediamtx as Settings;
use crate::events::{AlertEvent, Issue, Phase, Severity};

/// Why MediaMTX is being (re)started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It exited without being asked to.
    Exited,
    /// It did not answer its API.
    Hung,
    /// Its memory stayed above the ceiling.
    Memory,
    /// A configuration change that MediaMTX cannot apply by itself.
    Reconfigure,
    /// Every camera failed at once (the camera monitor's systemic guard).
    Systemic,
    /// The daemon is shutting down.
    Shutdown,
    /// A new MediaMTX binary was installed at the configured path.
    Upgrade,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Exited => "exited",
            Reason::Hung => "hung",
            Reason::Memory => "memory",
            Reason::Reconfigure => "reconfigure",
            Reason::Systemic => "systemic",
            Reason::Shutdown => "shutdown",
            Reason::Upgrade => "upgrade",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The process was spawned.
    Spawned { pid: u32 },
    /// Spawning failed (binary missing, not executable...).
    SpawnFailed { error: String },
    /// `/v3/info` answered (`true`) or failed or timed out (`false`).
    Probe { ok: bool },
    /// The process exited; `status` is a human description ("exit code 0",
    /// "killed by SIGKILL").
    Exited { status: String },
    /// Resident memory of the process, in bytes.
    Rss { bytes: u64 },
    /// Restart on purpose (e.g. a global config change).
    Restart { reason: Reason },
    /// Stop for good (daemon shutdown).
    Shutdown,
    /// The daemon is restarting and leaves MediaMTX running for the next
    /// daemon to adopt.
    Detach,
    /// Time passed.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Spawn MediaMTX with the current generated config.
    Spawn,
    /// Ask it to stop gracefully (SIGTERM: segments are finalized).
    Terminate,
    /// Kill it and its process group (SIGKILL).
    Kill,
    /// Probe `/v3/info` now and report [`Event::Probe`].
    Probe,
    /// MediaMTX is ready: the camera monitor may start judging cameras.
    BecameReady,
    /// MediaMTX went away (exit, hang, planned restart): the camera monitor
    /// must suspend its judgements. `unexpected` is false for planned stops.
    WentDown {
        reason: Reason,
        unexpected: bool,
        detail: String,
    },
    /// Raise or resolve an incident about the process.
    Alert(ProcessAlert),
    /// Shutdown finished: the process is gone.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessAlert {
    /// MediaMTX is down (exit or hang); resolved when ready again.
    DownFiring {
        reason: Reason,
        detail: String,
    },
    DownResolved,
    /// Restart storm (Critical); resolved after a healthy run.
    StormFiring {
        restarts: usize,
        window: Duration,
    },
    StormResolved,
    /// The memory watchdog restarted MediaMTX (Warning, one-off).
    MemoryRestart {
        rss: u64,
        limit: u64,
    },
    /// MediaMTX is restarted once to run a new binary (Info, one-off).
    Upgraded,
}

impl ProcessAlert {
    /// The alert event of this process incident: a down MediaMTX is a
    /// Warning (the cameras' own Critical alerts follow if recording stops),
    /// a restart storm is Critical, a memory restart a one-off Warning.
    pub fn event(self, at: chrono::DateTime<chrono::Utc>) -> AlertEvent {
        let (severity, phase, issue, details) = match self {
            ProcessAlert::DownFiring { reason, detail } => (
                Severity::Warning,
                Phase::Firing,
                Issue::MediamtxDown,
                format!("MediaMTX {}: {detail}", reason.as_str()),
            ),
            ProcessAlert::DownResolved => (
                Severity::Warning,
                Phase::Resolved,
                Issue::MediamtxDown,
                "MediaMTX is back".into(),
            ),
            ProcessAlert::StormFiring { restarts, window } => (
                Severity::Critical,
                Phase::Firing,
                Issue::MediamtxRestartStorm,
                format!(
                    "MediaMTX cannot be kept running: {restarts} restarts within {}s",
                    window.as_secs()
                ),
            ),
            ProcessAlert::StormResolved => (
                Severity::Critical,
                Phase::Resolved,
                Issue::MediamtxRestartStorm,
                "MediaMTX has been running steadily again".into(),
            ),
            ProcessAlert::MemoryRestart { rss, limit } => (
                Severity::Warning,
                Phase::Notice,
                Issue::MediamtxMemory,
                format!(
                    "MediaMTX used {} MiB (limit {} MiB); restarted gracefully",
                    rss >> 20,
                    limit >> 20
                ),
            ),
            ProcessAlert::Upgraded => (
                Severity::Info,
                Phase::Notice,
                Issue::MediamtxUpgraded,
                "a new MediaMTX binary was installed: MediaMTX is restarted once, gracefully, to run it".into(),
            ),
        };
        AlertEvent::system(
            at,
            severity,
            phase,
            format!("mediamtx:{}", issue.as_str()),
            issue,
            details,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started yet, or stopped for good.
    Idle,
    /// Waiting `until` before the next spawn.
    Backoff { until: Instant },
    /// Spawned, waiting for `/v3/info`.
    Starting { since: Instant },
    /// Found running (started by a previous daemon), waiting for `/v3/info`.
    Adopting { since: Instant },
    /// Answering its API.
    Running { since: Instant },
    /// SIGTERM sent; SIGKILL at `kill_at`; then restart unless shutting down.
    Stopping {
        reason: Reason,
        kill_at: Instant,
        killed: bool,
    },
}

/// What the API and metrics see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessStatus {
    pub up: bool,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub last_exit: Option<String>,
    pub storm: bool,
}

pub struct ProcessMachine {
    settings: Settings,
    probe_every: Duration,
    state: State,
    pid: Option<u32>,
    /// Consecutive failures, for the backoff (reset after a healthy run).
    failures: u32,
    /// Times of recent restarts, for the storm guard.
    recent_restarts: VecDeque<Instant>,
    storm_open: bool,
    down_open: bool,
    failed_probes: u32,
    next_probe: Option<Instant>,
    rss_high_since: Option<Instant>,
    shutting_down: bool,
    /// Total restarts, by reason (for metrics).
    pub restarts_by_reason: Vec<(Reason, u64)>,
    last_exit: Option<String>,
}

impl ProcessMachine {
    /// `probe_every`: how often a running MediaMTX is probed.
    pub fn new(settings: Settings, probe_every: Duration) -> ProcessMachine {
        ProcessMachine {
            settings,
            probe_every,
            state: State::Idle,
            pid: None,
            failures: 0,
            recent_restarts: VecDeque::new(),
            storm_open: false,
            down_open: false,
            failed_probes: 0,
            next_probe: None,
            rss_high_since: None,
            shutting_down: false,
            restarts_by_reason: Vec::new(),
            last_exit: None,
        }
    }

    /// New limits after a config reload; they apply from the next decision.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// The running MediaMTX's pid (between `Spawned` and `Exited`).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    pub fn status(&self) -> ProcessStatus {
        ProcessStatus {
            up: self.is_running(),
            pid: self.pid,
            restarts: self.restarts_by_reason.iter().map(|(_, n)| n).sum(),
            last_exit: self.last_exit.clone(),
            storm: self.storm_open,
        }
    }

    /// The first spawn.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        self.state = State::Starting { since: now };
        self.next_probe = Some(now);
        vec![Action::Spawn]
    }

    /// The first decision when a MediaMTX started by a previous daemon is
    /// still running as `pid`: no spawn, probe it; it is `Running` once it
    /// answers, a hang if it does not within `startup_timeout`.
    pub fn adopt(&mut self, now: Instant, pid: u32) -> Vec<Action> {
        self.pid = Some(pid);
        self.failed_probes = 0;
        self.state = State::Adopting { since: now };
        self.next_probe = Some(now);
        vec![Action::Probe]
    }

    /// When the driver must call [`Event::Tick`] next at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Idle => None,
            State::Backoff { until } => Some(*until),
            State::Starting { .. } | State::Adopting { .. } | State::Running { .. } => {
                self.next_probe
            }
            State::Stopping {
                kill_at, killed, ..
            } => (!killed).then_some(*kill_at),
        }
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Spawned { pid } => {
                self.pid = Some(pid);
                self.failed_probes = 0;
            }
            Event::SpawnFailed { error } => {
                self.pid = None;
                self.last_exit = Some(format!("could not start: {error}"));
                self.went_down(now, Reason::Exited, error, &mut out);
            }
            Event::Probe { ok } => self.on_probe(now, ok, &mut out),
            Event::Exited { status } => {
                self.pid = None;
                self.last_exit = Some(status.clone());
                match self.state.clone() {
                    State::Stopping { reason, .. } => {
                        if self.shutting_down {
                            self.state = State::Idle;
                            out.push(Action::Stopped);
                        } else {
                            self.schedule_restart(now, reason, &mut out);
                        }
                    }
                    State::Idle => {}
                    _ if self.shutting_down => {
                        self.state = State::Idle;
                        out.push(Action::Stopped);
                    }
                    _ => self.went_down(now, Reason::Exited, status, &mut out),
                }
            }
            Event::Rss { bytes } => self.on_rss(now, bytes, &mut out),
            Event::Restart { reason } => {
                if matches!(
                    self.state,
                    State::Running { .. } | State::Starting { .. } | State::Adopting { .. }
                ) {
                    if reason == Reason::Upgrade {
                        out.push(Action::Alert(ProcessAlert::Upgraded));
                    }
                    self.stop(now, reason, &mut out);
                }
            }
            Event::Detach => {
                self.shutting_down = true;
                match self.state {
                    // A stop already under way is finished, not abandoned.
                    State::Stopping { .. } => {}
                    _ => {
                        self.state = State::Idle;
                        self.next_probe = None;
                        out.push(Action::Stopped);
                    }
                }
            }
            Event::Shutdown => {
                self.shutting_down = true;
                match self.state {
                    State::Running { .. } | State::Starting { .. } | State::Adopting { .. } => {
                        self.stop(now, Reason::Shutdown, &mut out)
                    }
                    State::Stopping { .. } => {}
                    State::Idle | State::Backoff { .. } => {
                        self.state = State::Idle;
                        out.push(Action::Stopped);
                    }
                }
            }
            Event::Tick => self.on_tick(now, &mut out),
        }
        out
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state.clone() {
            State::Backoff { until } if now >= until => {
                self.state = State::Starting { since: now };
                self.next_probe = Some(now);
                out.push(Action::Spawn);
            }
            State::Starting { .. } | State::Adopting { .. } | State::Running { .. } => {
                if self.next_probe.is_some_and(|t| now >= t) {
                    self.next_probe = None; // set again when the answer comes
                    out.push(Action::Probe);
                }
                if let State::Running { since } = self.state {
                    // A healthy run resets the backoff and ends a storm.
                    if now.duration_since(since) >= self.settings.healthy_after.get() {
                        self.failures = 0;
                        if self.storm_open {
                            self.storm_open = false;
                            out.push(Action::Alert(ProcessAlert::StormResolved));
                        }
                    }
                }
            }
            State::Stopping {
                reason,
                kill_at,
                killed: false,
            } if now >= kill_at => {
                self.state = State::Stopping {
                    reason,
                    kill_at,
                    killed: true,
                };
                out.push(Action::Kill);
            }
            _ => {}
        }
    }

    fn on_probe(&mut self, now: Instant, ok: bool, out: &mut Vec<Action>) {
        match self.state.clone() {
            State::Starting { since } => {
                if ok {
                    self.state = State::Running { since: now };
                    self.failed_probes = 0;
                    self.next_probe = Some(now + self.probe_every);
                    out.push(Action::BecameReady);
                    if self.down_open {
                        self.down_open = false;
                        out.push(Action::Alert(ProcessAlert::DownResolved));
                    }
                } else if now.duration_since(since) >= self.settings.startup_timeout.get() {
                    let detail = format!(
                        "no answer from the API {} after start",
                        self.settings.startup_timeout
                    );
                    self.hang(now, detail, out);
                } else {
                    // Not up yet: probe again soon.
                    self.next_probe = Some(now + Duration::from_millis(200));
                }
            }
            State::Adopting { since } => {
                if ok {
                    // It never went down: nothing to resolve, no restart counted.
                    self.state = State::Running { since: now };
                    self.failed_probes = 0;
                    self.next_probe = Some(now + self.probe_every);
                    out.push(Action::BecameReady);
                } else if now.duration_since(since) >= self.settings.startup_timeout.get() {
                    let detail = format!(
                        "the MediaMTX left running by the previous daemon (pid {}) did not answer its API within {}; restarting it",
                        self.pid.unwrap_or(0),
                        self.settings.startup_timeout
                    );
                    self.hang(now, detail, out);
                } else {
                    self.next_probe = Some(now + Duration::from_millis(200));
                }
            }
            State::Running { .. } => {
                if ok {
                    self.failed_probes = 0;
                } else {
                    self.failed_probes += 1;
                    if self.failed_probes >= self.settings.hang_probes {
                        let detail = format!("{} API probes in a row failed", self.failed_probes);
                        self.hang(now, detail, out);
                        return;
                    }
                }
                self.next_probe = Some(now + self.probe_every);
            }
            _ => {}
        }
    }

    fn hang(&mut self, now: Instant, detail: String, out: &mut Vec<Action>) {
        self.open_down(Reason::Hung, detail.clone(), out);
        out.push(Action::WentDown {
            reason: Reason::Hung,
            unexpected: true,
            detail,
        });
        self.stop_signal(now, Reason::Hung, out);
    }

    fn on_rss(&mut self, now: Instant, bytes: u64, out: &mut Vec<Action>) {
        let limit = self.settings.memory_limit.0;
        if limit == 0 || !self.is_running() {
            self.rss_high_since = None;
            return;
        }
        if bytes <= limit {
            self.rss_high_since = None;
            return;
        }
        let since = *self.rss_high_since.get_or_insert(now);
        if now.duration_since(since) >= self.settings.memory_limit_for.get() {
            self.rss_high_since = None;
            out.push(Action::Alert(ProcessAlert::MemoryRestart {
                rss: bytes,
                limit,
            }));
            self.stop(now, Reason::Memory, out);
        }
    }

    /// A planned stop: TERM now, KILL after `stop_timeout`.
    fn stop(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        out.push(Action::WentDown {
            reason,
            unexpected: false,
            detail: format!("stopping MediaMTX ({})", reason.as_str()),
        });
        self.stop_signal(now, reason, out);
    }

    fn stop_signal(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        self.next_probe = None;
        if self.pid.is_none() {
            // Nothing to stop (spawn failed or already gone).
            if self.shutting_down {
                self.state = State::Idle;
                out.push(Action::Stopped);
            } else {
                self.schedule_restart(now, reason, out);
            }
            return;
        }
        self.state = State::Stopping {
            reason,
            kill_at: now + self.settings.stop_timeout.get(),
            killed: false,
        };
        out.push(Action::Terminate);
    }

    fn open_down(&mut self, reason: Reason, detail: String, out: &mut Vec<Action>) {
        if !self.down_open {
            self.down_open = true;
            out.push(Action::Alert(ProcessAlert::DownFiring { reason, detail }));
        }
    }

    /// An unexpected exit or failed spawn.
    fn went_down(&mut self, now: Instant, reason: Reason, detail: String, out: &mut Vec<Action>) {
        self.open_down(reason, detail.clone(), out);
        out.push(Action::WentDown {
            reason,
            unexpected: true,
            detail,
        });
        self.schedule_restart(now, reason, out);
    }

    fn schedule_restart(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        // Planned restarts (config, memory) are not failures of MediaMTX.
        let failure = matches!(reason, Reason::Exited | Reason::Hung);
        let delay = if failure {
            self.failures += 1;
            self.backoff(self.failures)
        } else {
            Duration::ZERO
        };
        match self
            .restarts_by_reason
            .iter_mut()
            .find(|(r, _)| *r == reason)
        {
            Some((_, n)) => *n += 1,
            None => self.restarts_by_reason.push((reason, 1)),
        }
        // Storm guard over every restart, planned or not.
        let window = self.settings.storm_window.get();
        self.recent_restarts.push_back(now);
        while self
            .recent_restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.recent_restarts.pop_front();
        }
        let storm = self.recent_restarts.len() > self.settings.storm_restarts as usize;
        let delay = if storm {
            if !self.storm_open {
                self.storm_open = true;
                out.push(Action::Alert(ProcessAlert::StormFiring {
                    restarts: self.recent_restarts.len(),
                    window,
                }));
            }
            self.settings.restart_max_delay.get()
        } else {
            delay
        };
        self.state = State::Backoff { until: now + delay };
        if delay.is_zero() {
            self.on_tick(now, out);
        }
    }

    /// `restart_delay × 2^(n-1)`, capped.
    fn backoff(&self, n: u32) -> Duration {
        let base = self.settings.restart_delay.get();
        let max = self.settings.restart_max_delay.get();
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        base.checked_mul(factor).unwrap_or(max).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Bytes, Span};

    fn settings() -> Settings {
        Settings {
            restart_delay: Span::secs(1),
            restart_max_delay: Span::secs(30),
            healthy_after: Span::secs(60),
            storm_restarts: 5,
            storm_window: Span::secs(300),
            hang_probes: 3,
            startup_timeout: Span::secs(15),
            stop_timeout: Span::secs(10),
            memory_limit: Bytes(1 << 30),
            memory_limit_for: Span::secs(120),
            ..Settings::default()
        }
    }

    struct Sim {
        m: ProcessMachine,
        now: Instant,
        spawns: Vec<Instant>,
        incidents: Vec<ProcessAlert>,
        pid: u32,
    }

    impl Sim {
        fn new() -> Sim {
            let now = Instant::now();
            let mut m = ProcessMachine::new(settings(), Duration::from_secs(2));
            let acts = m.start(now);
            let mut s = Sim {
                m,
                now,
                spawns: vec![],
                incidents: vec![],
                pid: 100,
            };
            s.apply(acts);
            s
        }
        fn apply(&mut self, acts: Vec<Action>) {
            for a in acts {
                match a {
                    Action::Spawn => {
                        self.spawns.push(self.now);
                        self.pid += 1;
                        let acts = self.m.handle(self.now, Event::Spawned { pid: self.pid });
                        self.apply(acts);
                    }
                    Action::Alert(i) => self.incidents.push(i),
                    _ => {}
                }
            }
        }
        fn ev(&mut self, e: Event) -> Vec<Action> {
            let acts = self.m.handle(self.now, e);
            self.apply(acts.clone());
            acts
        }
        fn advance(&mut self, d: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now = (self.now + Duration::from_millis(100)).min(end);
                self.ev(Event::Tick);
            }
        }
        fn ready(&mut self) {
            self.ev(Event::Probe { ok: true });
            assert!(self.m.is_running());
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn unexpected_exit_code_zero_is_a_failure_with_doubling_backoff() {
        let mut s = Sim::new();
        s.ready();
        let delays: Vec<u64> = (0..5)
            .map(|_| {
                let before = s.spawns.len();
                let t0 = s.now;
                s.ev(Event::Exited {
                    status: "exit code 0".into(),
                });
                while s.spawns.len() == before {
                    s.advance(Duration::from_millis(100));
                }
                s.ready();
                let d = s.spawns.last().unwrap().duration_since(t0);
                d.as_secs()
            })
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16]);
        assert!(matches!(
            s.incidents[0],
            ProcessAlert::DownFiring {
                reason: Reason::Exited,
                ..
            }
        ));
        assert!(s.incidents.contains(&ProcessAlert::DownResolved));
    }

    #[test]
    fn backoff_is_capped_and_resets_after_a_healthy_run() {
        let m = ProcessMachine::new(settings(), secs(2));
        assert_eq!(m.backoff(1), secs(1));
        assert_eq!(m.backoff(5), secs(16));
        assert_eq!(m.backoff(6), secs(30));
        assert_eq!(m.backoff(40), secs(30));
        let mut s = Sim::new();
        s.ready();
        for _ in 0..3 {
            s.ev(Event::Exited { status: "x".into() });
            s.advance(secs(10));
            s.ready();
        }
        assert_eq!(s.m.failures, 3);
        s.advance(secs(61));
        assert_eq!(s.m.failures, 0, "a healthy minute resets the backoff");
        let n = s.spawns.len();
        s.ev(Event::Exited { status: "x".into() });
        s.advance(Duration::from_millis(1100));
        assert_eq!(s.spawns.len(), n + 1, "back to the quick first delay");
    }

    #[test]
    fn a_storm_is_one_critical_incident_and_bounded_restarts() {
        let mut s = Sim::new();
        // Crashes right after every start, for 10 minutes.
        let start = s.now;
        while s.now.duration_since(start) < secs(600) {
            if s.m.pid.is_some() && matches!(s.m.state, State::Starting { .. }) {
                s.ev(Event::Exited {
                    status: "killed by SIGABRT".into(),
                });
            }
            s.advance(Duration::from_millis(100));
        }
        let storms = s
            .incidents
            .iter()
            .filter(|i| matches!(i, ProcessAlert::StormFiring { .. }))
            .count();
        assert_eq!(storms, 1);
        let downs = s
            .incidents
            .iter()
            .filter(|i| matches!(i, ProcessAlert::DownFiring { .. }))
            .count();
        assert_eq!(downs, 1, "one down incident for the whole outage");
        // 1+2+4+8+16 s, then one every 30 s: about 24 in 10 minutes, not thousands.
        assert!(s.spawns.len() <= 25, "{} spawns", s.spawns.len());
        // It recovers: a healthy run ends the storm.
        while !matches!(s.m.state, State::Starting { .. }) {
            s.advance(Duration::from_millis(100));
        }
        s.ready();
        s.advance(secs(61));
        assert!(s.incidents.contains(&ProcessAlert::StormResolved));
    }

    #[test]
    fn a_hang_is_terminated_then_killed_then_restarted() {
        let mut s = Sim::new();
        s.ready();
        let mut acts = vec![];
        for _ in 0..3 {
            s.advance(secs(2));
            acts = s.ev(Event::Probe { ok: false });
        }
        assert!(acts.contains(&Action::Terminate), "{acts:?}");
        assert!(matches!(
            s.incidents[0],
            ProcessAlert::DownFiring {
                reason: Reason::Hung,
                ..
            }
        ));
        // It ignores SIGTERM: SIGKILL after stop_timeout.
        let mut killed = false;
        for _ in 0..101 {
            s.now += Duration::from_millis(100);
            killed |= s.ev(Event::Tick).contains(&Action::Kill);
        }
        assert!(killed);
        let n = s.spawns.len();
        s.ev(Event::Exited {
            status: "killed by SIGKILL".into(),
        });
        s.advance(secs(2));
        assert_eq!(s.spawns.len(), n + 1);
    }

    #[test]
    fn no_answer_after_start_is_a_hang() {
        let mut s = Sim::new();
        let mut terminated = false;
        for _ in 0..200 {
            s.advance(Duration::from_millis(100));
            terminated |= s
                .ev(Event::Probe { ok: false })
                .contains(&Action::Terminate);
        }
        assert!(terminated, "startup_timeout passed without an answer");
    }

    #[test]
    fn memory_above_the_ceiling_for_long_restarts_gracefully() {
        let mut s = Sim::new();
        s.ready();
        let high = 2u64 << 30;
        s.ev(Event::Rss { bytes: high });
        s.advance(secs(60));
        s.ev(Event::Rss { bytes: 100 << 20 }); // dropped: the clock restarts
        s.advance(secs(60));
        let acts = s.ev(Event::Rss { bytes: high });
        assert!(!acts.contains(&Action::Terminate));
        s.advance(secs(121));
        let acts = s.ev(Event::Rss { bytes: high });
        assert!(acts.contains(&Action::Terminate), "{acts:?}");
        assert!(matches!(
            s.incidents.last(),
            Some(ProcessAlert::MemoryRestart { .. })
        ));
        let n = s.spawns.len();
        s.ev(Event::Exited {
            status: "exit code 0".into(),
        });
        assert_eq!(s.spawns.len(), n + 1, "planned restart: no backoff");
        assert!(!s
            .incidents
            .iter()
            .any(|i| matches!(i, ProcessAlert::DownFiring { .. })));
    }

    #[test]
    fn shutdown_terminates_and_reports_stopped_without_restart() {
        let mut s = Sim::new();
        s.ready();
        let acts = s.ev(Event::Shutdown);
        assert!(acts.contains(&Action::Terminate));
        let n = s.spawns.len();
        let acts = s.ev(Event::Exited {
            status: "exit code 0".into(),
        });
        assert_eq!(acts, vec![Action::Stopped]);
        s.advance(secs(60));
        assert_eq!(s.spawns.len(), n);
        assert!(s.incidents.is_empty(), "a requested stop is no incident");
    }

    impl Sim {
        /// A daemon that found MediaMTX running as `pid`.
        fn adopted(pid: u32) -> (Sim, Vec<Action>) {
            let now = Instant::now();
            let mut m = ProcessMachine::new(settings(), Duration::from_secs(2));
            let acts = m.adopt(now, pid);
            let mut s = Sim {
                m,
                now,
                spawns: vec![],
                incidents: vec![],
                pid: 500,
            };
            s.apply(acts.clone());
            (s, acts)
        }
    }

    #[test]
    fn an_adopted_mediamtx_is_probed_not_spawned_and_supervised_like_our_own() {
        let (mut s, acts) = Sim::adopted(42);
        assert_eq!(acts, vec![Action::Probe], "no spawn: it is already running");
        assert_eq!(s.m.pid(), Some(42));
        assert!(matches!(s.m.state(), State::Adopting { .. }));
        let acts = s.ev(Event::Probe { ok: true });
        assert_eq!(acts, vec![Action::BecameReady]);
        assert!(s.m.is_running());
        assert_eq!(s.m.status().restarts, 0, "an adoption is no restart");
        // Probed like any running MediaMTX.
        let mut probed = false;
        for _ in 0..25 {
            s.now += Duration::from_millis(100);
            probed |= s.ev(Event::Tick).contains(&Action::Probe);
        }
        assert!(probed);
        // Its exit (seen through a pidfd) is a failure: restarted within the backoff.
        let t0 = s.now;
        s.ev(Event::Exited {
            status: "exited (not our child: status unknown)".into(),
        });
        while s.spawns.is_empty() {
            s.advance(Duration::from_millis(100));
            assert!(s.now.duration_since(t0) < secs(5));
        }
        assert_eq!(s.spawns[0].duration_since(t0), secs(1));
        assert!(matches!(
            s.incidents[0],
            ProcessAlert::DownFiring {
                reason: Reason::Exited,
                ..
            }
        ));
    }

    #[test]
    fn an_adopted_mediamtx_that_does_not_answer_is_stopped_and_restarted() {
        let (mut s, _) = Sim::adopted(42);
        let mut terminated = false;
        let t0 = s.now;
        while !terminated {
            s.advance(Duration::from_millis(200));
            terminated = s
                .ev(Event::Probe { ok: false })
                .contains(&Action::Terminate);
            assert!(
                s.now.duration_since(t0) <= secs(16),
                "startup_timeout is 15 s"
            );
        }
        assert!(s.now.duration_since(t0) >= secs(15));
        assert!(matches!(
            &s.incidents[0],
            ProcessAlert::DownFiring { reason: Reason::Hung, detail } if detail.contains("pid 42")
        ));
        s.ev(Event::Exited {
            status: "exit code 0".into(),
        });
        s.advance(Duration::from_millis(1100));
        assert_eq!(
            s.spawns.len(),
            1,
            "a new MediaMTX after the first backoff step"
        );
    }

    #[test]
    fn detach_leaves_mediamtx_running_without_a_signal() {
        let (mut s, _) = Sim::adopted(42);
        s.ev(Event::Probe { ok: true });
        let acts = s.ev(Event::Detach);
        assert_eq!(acts, vec![Action::Stopped]);
        assert_eq!(s.m.next_deadline(), None);
        s.advance(secs(60));
        assert!(s.spawns.is_empty());
        assert!(s.incidents.is_empty());
        // A shutdown of an adopted MediaMTX stops it as usual.
        let (mut s, _) = Sim::adopted(43);
        s.ev(Event::Probe { ok: true });
        assert!(s.ev(Event::Shutdown).contains(&Action::Terminate));
        assert_eq!(
            s.ev(Event::Exited {
                status: "exit code 0".into()
            }),
            vec![Action::Stopped]
        );
    }

    #[test]
    fn an_upgrade_restart_is_planned_without_backoff_with_one_info_notice() {
        let mut s = Sim::new();
        s.ready();
        let acts = s.ev(Event::Restart {
            reason: Reason::Upgrade,
        });
        assert!(acts.contains(&Action::Terminate));
        let n = s.spawns.len();
        s.ev(Event::Exited {
            status: "exit code 0".into(),
        });
        assert_eq!(s.spawns.len(), n + 1);
        assert_eq!(s.incidents, vec![ProcessAlert::Upgraded]);
        let event = ProcessAlert::Upgraded.event(chrono::Utc::now());
        assert_eq!(
            (event.severity, event.phase, event.issue),
            (Severity::Info, Phase::Notice, Issue::MediamtxUpgraded)
        );
        // Once: the new MediaMTX comes up without another notice.
        s.ev(Event::Probe { ok: true });
        s.advance(secs(60));
        assert_eq!(s.incidents, vec![ProcessAlert::Upgraded]);
    }
}
