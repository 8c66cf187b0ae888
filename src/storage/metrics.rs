//! The storage series for Prometheus, set from [`StorageView`] (the daemon
//! calls [`publish`] with the machine's view when it publishes its
//! snapshot, and [`describe`] once after installing the recorder).

use metrics::{counter, gauge};

use super::machine::StorageView;

pub fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        "vms_storage_footage_days",
        "Days of footage on disk per camera (from its oldest segment still on disk)"
    );
    describe_gauge!(
        "vms_storage_retention_required_days",
        "The retention each camera must keep"
    );
    describe_gauge!(
        "vms_storage_retention_compliant",
        "1 when the camera's footage covers its retention (or the camera is younger than it)"
    );
    describe_gauge!("vms_storage_segments", "Segments on disk per camera");
    describe_gauge!(
        "vms_storage_bytes",
        Unit::Bytes,
        "Bytes of footage on disk per camera"
    );
    describe_gauge!(
        "vms_storage_write_bytes_per_second",
        "Write rate of all cameras over the last hour"
    );
    describe_gauge!(
        "vms_storage_free_floor_bytes",
        Unit::Bytes,
        "Free space below which the oldest footage is evicted"
    );
    describe_gauge!(
        "vms_storage_days_until_full",
        "Days until the free space reaches the floor at the current write rate (absent when retention keeps it from getting there)"
    );
    describe_gauge!(
        "vms_storage_capacity_days",
        "Days of footage the disk holds at the current write rate"
    );
    describe_gauge!(
        "vms_storage_disk_full",
        "1 while MediaMTX cannot write because the disk is full"
    );
    describe_gauge!(
        "vms_storage_catalog_bytes",
        Unit::Bytes,
        "Size of the segment catalog database"
    );
    describe_counter!("vms_storage_evictions_total", "Segments evicted for space");
    describe_counter!(
        "vms_storage_evicted_bytes_total",
        Unit::Bytes,
        "Bytes evicted for space"
    );
    describe_counter!(
        "vms_storage_evicted_hours_total",
        "Hours of footage evicted for space (rounded down)"
    );
    describe_counter!(
        "vms_storage_retention_deleted_total",
        "Segments deleted by retention"
    );
}

/// Sets every storage series from `view`. Camera series carry the
/// `camera_id` label, as the other camera series do.
pub fn publish(view: &StorageView) {
    for c in &view.cameras {
        let id = c.camera.to_string();
        gauge!("vms_storage_footage_days", "camera_id" => id.clone()).set(c.footage_days);
        gauge!("vms_storage_retention_required_days", "camera_id" => id.clone())
            .set(f64::from(c.required_days));
        gauge!("vms_storage_retention_compliant", "camera_id" => id.clone()).set(if c.compliant {
            1.0
        } else {
            0.0
        });
        gauge!("vms_storage_segments", "camera_id" => id.clone()).set(c.segments as f64);
        gauge!("vms_storage_bytes", "camera_id" => id).set(c.bytes as f64);
    }
    gauge!("vms_storage_write_bytes_per_second").set(view.write_bytes_per_second);
    if let Some(f) = view.floor_bytes {
        gauge!("vms_storage_free_floor_bytes").set(f as f64);
    }
    // A missing forecast is "never at this retention": left at -1 so a
    // rule `vms_storage_days_until_full >= 0 and < 7` reads naturally.
    gauge!("vms_storage_days_until_full").set(view.days_until_full.unwrap_or(-1.0));
    if let Some(d) = view.capacity_days {
        gauge!("vms_storage_capacity_days").set(d);
    }
    gauge!("vms_storage_disk_full").set(if view.disk_full { 1.0 } else { 0.0 });
    gauge!("vms_storage_catalog_bytes").set(view.catalog_bytes as f64);
    counter!("vms_storage_evictions_total").absolute(view.evictions_total);
    counter!("vms_storage_evicted_bytes_total").absolute(view.evicted_bytes_total);
    counter!("vms_storage_evicted_hours_total").absolute(view.evicted_hours_total as u64);
    counter!("vms_storage_retention_deleted_total").absolute(view.retention_deleted_total);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::exec::DiskSample;
    use crate::storage::machine::CameraStorage;

    #[test]
    fn the_view_becomes_prometheus_series() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let view = StorageView {
            disk: Some(DiskSample {
                total_bytes: 1000,
                available_bytes: 500,
            }),
            floor_bytes: Some(50),
            write_bytes_per_second: 2.5,
            capacity_days: Some(40.0),
            days_until_full: None,
            disk_full: false,
            evicting: false,
            evictions_total: 3,
            evicted_bytes_total: 300,
            evicted_hours_total: 0.05,
            retention_deleted_total: 7,
            catalog_bytes: 4096,
            cameras: vec![CameraStorage {
                camera: 5,
                footage_days: 61.5,
                required_days: 90,
                compliant: false,
                reason: Some("evictions"),
                segments: 10,
                bytes: 100,
                evicted_segments: 3,
                evicted_bytes: 300,
                evicted_hours: 0.05,
            }],
        };
        metrics::with_local_recorder(&recorder, || {
            describe();
            publish(&view);
        });
        let text = handle.render();
        for line in [
            "vms_storage_footage_days{camera_id=\"5\"} 61.5",
            "vms_storage_retention_compliant{camera_id=\"5\"} 0",
            "vms_storage_days_until_full -1",
            "vms_storage_free_floor_bytes 50",
            "vms_storage_evictions_total 3",
            "vms_storage_retention_deleted_total 7",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
