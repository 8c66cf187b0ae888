//! Executes the camera machine's actions: path removal and re-creation
//! through MediaMTX's API, alerts, a MediaMTX restart for a systemic
//! failure, recovery metrics.

use super::Daemon;
use crate::clock::Now;
use crate::mediamtx::render;
use crate::supervisor::cameras::Action;
use crate::supervisor::process::{Event, Reason};

impl Daemon {
    pub(super) async fn camera_actions(&mut self, now: Now, actions: Vec<Action>) {
        // The machine acts when a camera's state changes: publish it.
        self.state_changed |= !actions.is_empty();
        for action in actions {
            match action {
                Action::RemovePath { camera } => {
                    let name = crate::config::path_name(camera);
                    tracing::info!(camera_id = camera, path = %name, "recovery: removing path");
                    let client = self.client.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client.delete_path(&name).await {
                            tracing::warn!(path = %name, error = %e, "recovery: remove failed");
                        }
                    });
                }
                Action::CreatePath { camera } => {
                    let Some(cam) = self.config.camera(camera) else {
                        continue;
                    };
                    let name = cam.path_name();
                    let conf = render::path_json(&self.config, cam);
                    tracing::info!(camera_id = camera, path = %name, "recovery: re-creating path");
                    let client = self.client.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client.replace_path(&name, &conf).await {
                            tracing::warn!(path = %name, error = %e, "recovery: re-create failed; the convergence check will retry");
                        }
                    });
                }
                Action::Alert(event) => self.alert(event).await,
                Action::RestartMediamtx { detail } => {
                    tracing::error!(detail = %detail, "systemic failure: restarting MediaMTX");
                    let acts = self.process.handle(
                        now.mono,
                        Event::Restart {
                            reason: Reason::Systemic,
                        },
                    );
                    Box::pin(self.process_actions(now, acts)).await;
                }
                Action::RecoveryFinished {
                    camera,
                    level,
                    success,
                    duration,
                } => {
                    let problem = if level == 2 { "recording" } else { "stream" };
                    tracing::info!(
                        camera_id = camera,
                        level,
                        success,
                        seconds = duration.as_secs_f64(),
                        "recovery attempt finished"
                    );
                    crate::metrics::recovery_finished(
                        camera,
                        level,
                        success,
                        problem,
                        duration.as_secs_f64(),
                    );
                }
            }
        }
    }
}
