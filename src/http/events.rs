//! `GET /api/events`, server-sent events: `status` (counts and cameras) on
//! every change of the snapshot, and `alert` for every alert as it happens.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use super::types::StatusEvent;
use super::ApiState;

pub async fn stream(
    State(state): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let status = WatchStream::new(state.daemon.snapshot.clone()).map(|snap| {
        let data = serde_json::to_string(&StatusEvent::from(snap.as_ref())).unwrap_or_default();
        Ok(Event::default().event("status").data(data))
    });
    let alerts = BroadcastStream::new(state.alert_events.subscribe()).filter_map(|ev| async move {
        ev.ok().map(|ev| {
            Ok(Event::default()
                .event("alert")
                .data(serde_json::to_string(&ev).unwrap_or_default()))
        })
    });
    Sse::new(futures_util::stream::select(status, alerts)).keep_alive(KeepAlive::default())
}
