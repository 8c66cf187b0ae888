//! Prometheus metrics: the series of docs/design.md §7.1 with their names and labels, plus what
//! an operator needs that the original design forgot. Gauges are set from the published
//! snapshot once a second; counters and histograms are recorded where things
//! happen.

use std::sync::OnceLock;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::status::{Health, Snapshot};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("vms_recovery_duration_seconds".into()),
                    &[1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("vms_stream_latency_seconds".into()),
                        &[0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 10.0],
                    )
                })
                .expect("static bucket lists are not empty");
            let handle = builder
                .install_recorder()
                .expect("the metrics recorder is installed once");
            describe();
            gauge!(
                "vms_build_info",
                "version" => env!("CARGO_PKG_VERSION"),
                "commit" => env!("VMS_GIT_COMMIT")
            )
            .set(1.0);
            live_views(0);
            handle
        })
        .clone()
}

/// The live views MediaMTX serves now (see `access::Store::close_views`).
pub fn live_views(n: usize) {
    gauge!("vms_live_views").set(n as f64);
}

pub fn render() -> String {
    install().render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "vms_camera_status",
        "Camera status (1 online, 0 recovering or offline)"
    );
    describe_gauge!(
        "vms_camera_state",
        "1 for the camera's current state (online, recovering, offline)"
    );
    describe_gauge!(
        "vms_recording_active",
        "Recording active (1 yes, 0 no): segment data written within monitor.stall_after"
    );
    describe_gauge!(
        "vms_recording_last_data_age_seconds",
        Unit::Seconds,
        "Seconds since the camera's segment file last grew"
    );
    describe_counter!(
        "vms_recovery_failures_total",
        "Failed recovery attempts, by failure type"
    );
    describe_counter!(
        "vms_recoveries_total",
        "Recovery attempts, by level and result"
    );
    describe_histogram!(
        "vms_recovery_duration_seconds",
        Unit::Seconds,
        "Duration of recovery attempts"
    );
    describe_histogram!(
        "vms_stream_latency_seconds",
        Unit::Seconds,
        "Live stream latency measured by viewers, by protocol"
    );
    describe_gauge!(
        "vms_disk_usage_percent",
        "Disk usage of the recordings filesystem, percent"
    );
    describe_gauge!(
        "vms_disk_usage_bytes",
        Unit::Bytes,
        "Bytes used on the recordings filesystem"
    );
    describe_gauge!("vms_active_alerts", "Open alerts, by severity");
    describe_gauge!("vms_mediamtx_up", "MediaMTX answers its API (1) or not (0)");
    describe_counter!(
        "vms_mediamtx_restarts_total",
        "MediaMTX restarts, by reason"
    );
    describe_gauge!(
        "vms_alert_store_durable",
        "The alert history is kept in its database file (1), or in memory only because the file cannot be used (0)"
    );
    describe_gauge!(
        "vms_alert_outbox_depth",
        "Alert messages waiting for delivery, by channel"
    );
    describe_gauge!(
        "vms_alert_outbox_oldest_seconds",
        Unit::Seconds,
        "Age of the oldest alert message waiting for delivery, by channel"
    );
    describe_gauge!("vms_build_info", "Version and commit of this build");
    describe_gauge!(
        "vms_live_views",
        "Live views being served now (readers MediaMTX lists for a logged-in person)"
    );
}

/// Called when a recovery attempt ends.
pub fn recovery_finished(camera: u32, level: u8, success: bool, problem: &str, seconds: f64) {
    let id = camera.to_string();
    counter!(
        "vms_recoveries_total",
        "camera_id" => id.clone(),
        "level" => level.to_string(),
        "result" => if success { "success" } else { "failure" }
    )
    .increment(1);
    histogram!("vms_recovery_duration_seconds").record(seconds);
    if !success {
        counter!("vms_recovery_failures_total", "camera_id" => id, "failure_type" => problem.to_string())
            .increment(1);
    }
}

/// One live-latency measurement reported by a viewer's player.
pub fn stream_latency(camera: u32, protocol: &'static str, seconds: f64) {
    histogram!(
        "vms_stream_latency_seconds",
        "camera_id" => camera.to_string(),
        "protocol" => protocol
    )
    .record(seconds);
}

pub fn mediamtx_restart(reason: &str) {
    counter!("vms_mediamtx_restarts_total", "reason" => reason.to_string()).increment(1);
}

/// Sets every gauge from the snapshot.
pub fn update(snap: &Snapshot) {
    gauge!("vms_mediamtx_up").set(if snap.mediamtx.up { 1.0 } else { 0.0 });
    gauge!("vms_alert_store_durable").set(if snap.alert_store_error.is_none() {
        1.0
    } else {
        0.0
    });
    for cam in &snap.cameras {
        let id = cam.id.to_string();
        gauge!("vms_camera_status", "camera_id" => id.clone(), "camera_name" => cam.name.clone())
            .set(if cam.state == Health::Online {
                1.0
            } else {
                0.0
            });
        for state in Health::ALL {
            gauge!("vms_camera_state", "camera_id" => id.clone(), "state" => state.as_str())
                .set(if cam.state == state { 1.0 } else { 0.0 });
        }
        gauge!("vms_recording_active", "camera_id" => id.clone()).set(if cam.recording {
            1.0
        } else {
            0.0
        });
        if let Some(age) = cam.last_data_age_seconds {
            gauge!("vms_recording_last_data_age_seconds", "camera_id" => id).set(age);
        }
    }
    if let Some(disk) = &snap.disk {
        gauge!("vms_disk_usage_percent", "mount_point" => disk.mount_point.clone())
            .set(disk.percent);
        gauge!("vms_disk_usage_bytes", "mount_point" => disk.mount_point.clone())
            .set(disk.used_bytes as f64);
    }
}
