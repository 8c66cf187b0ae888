//! `GET /api/events`, server-sent events: `status` (counts and cameras) on
//! every change of the snapshot, and `alert` for every alert as it happens.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use super::auth::Caller;
use super::types::StatusEvent;
use super::ApiState;

/// A user limited to some cameras gets the status of those only and the
/// alerts of those and of the box.
pub async fn stream(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let scope = caller.clone();
    let status = WatchStream::new(state.daemon.snapshot.clone()).map(move |snap| {
        let snap = super::cameras::snapshot_for(snap, &scope);
        let data = serde_json::to_string(&StatusEvent::from(snap.as_ref())).unwrap_or_default();
        Ok(Event::default().event("status").data(data))
    });
    let alerts = BroadcastStream::new(state.alert_events.subscribe()).filter_map(move |ev| {
        let visible = ev
            .as_ref()
            .ok()
            .and_then(|e| e.camera.as_ref())
            .is_none_or(|c| caller.may_see(c.id));
        async move {
            ev.ok().filter(|_| visible).map(|ev| {
                Ok(Event::default()
                    .event("alert")
                    .data(serde_json::to_string(&ev).unwrap_or_default()))
            })
        }
    });
    Sse::new(futures_util::stream::select(status, alerts)).keep_alive(KeepAlive::default())
}
