//! A real Prometheus (Debian's package) scrapes the running daemon and the
//! MediaMTX stand-in, and PromQL finds the camera series.

use std::time::Duration;

use crate::harness::{Daemon, Setup};
use crate::monitoring::TestPrometheus;

#[tokio::test]
async fn prometheus_scrapes_the_daemon_and_mediamtx() {
    let d = Daemon::start(Setup::default());
    d.wait_all_recording(2).await;
    let st = d.sim_state().await.unwrap();
    let mediamtx_metrics = st["listeners"]["metrics"].as_str().unwrap().to_string();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: vms-supervisor\n    static_configs: [{{targets: ['{}']}}]\n\
         \x20 - job_name: mediamtx\n    static_configs: [{{targets: ['{mediamtx_metrics}']}}]\n",
        d.api
    );
    let prom = TestPrometheus::start(&config);
    let wait = Duration::from_secs(30);
    let status = prom.wait_for("vms_camera_status{job=\"vms-supervisor\"} == 1", wait);
    let mut names: Vec<String> = status
        .iter()
        .map(|s| s["metric"]["camera_name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["Estacionamento", "Portaria"]);
    let recording = prom.wait_for("sum(vms_recording_active)", wait);
    assert_eq!(recording[0]["value"][1], "2");
    // MediaMTX's own names: no prefix (docs/mediamtx.md §c).
    let ready = prom.wait_for("sum(paths{job=\"mediamtx\",state=\"ready\"})", wait);
    assert_eq!(ready[0]["value"][1], "2");
    let up = prom.wait_for("vms_mediamtx_up == 1", wait);
    assert_eq!(up.len(), 1);
    let age = prom.wait_for("max(vms_recording_last_data_age_seconds) < 6", wait);
    assert_eq!(age.len(), 1);
}
