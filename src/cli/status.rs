//! `vms-supervisor status`: the design's dashboard text (pt-BR), from the
//! running daemon, then an "Atenção" list for what the design's text has no
//! line for but an administrator must see.

use std::fmt::Write as _;

use anyhow::Context as _;

use crate::client::DaemonClient;
use crate::config::Config;
use crate::http::types::{HealthDoc, StatusDoc};

/// The text, and whether a camera is offline or not recording (exit 2).
pub async fn text(config: &Config) -> anyhow::Result<(String, bool)> {
    let client = DaemonClient::new(config);
    let health = client.health().await.with_context(|| {
        format!(
            "the daemon does not answer at {} (is vms-supervisor running?)",
            client.base()
        )
    })?;
    // The status document only adds warnings: without it, still print.
    let status = client.status().await.ok();
    let text = render(&health, status.as_ref(), config.timezone());
    Ok((
        text,
        health.offline > 0 || health.recording_health.failed > 0,
    ))
}

pub fn render(health: &HealthDoc, status: Option<&StatusDoc>, tz: chrono_tz::Tz) -> String {
    let plural = |n: usize| if n == 1 { "câmera" } else { "câmeras" };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "🟢 Online: {} {}\n🟡 Recuperando: {} {}\n🔴 Offline: {} {}",
        health.online,
        plural(health.online),
        health.recovering,
        plural(health.recovering),
        health.offline,
        plural(health.offline)
    );
    let rec = &health.recording_health;
    let _ = writeln!(
        text,
        "Gravação: {} ativas, {} paradas; disco {}",
        rec.active, rec.failed, rec.disk_usage
    );
    text.push_str("\nAlertas Recentes:\n");
    if health.recent_alerts.is_empty() {
        text.push_str("(nenhum)\n");
    }
    for a in &health.recent_alerts {
        let time = chrono::DateTime::parse_from_rfc3339(&a.timestamp)
            .map(|t| t.with_timezone(&tz).format("%H:%M").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "• {time} - Câmera {}: {}{}",
            a.camera,
            a.message,
            if a.resolved { "" } else { " (aberto)" }
        );
    }
    let mut warnings = Vec::new();
    if let Some(status) = status {
        if !status.mediamtx.up {
            warnings.push("MediaMTX fora do ar (nenhuma câmera grava)".to_string());
        }
        if let Some(e) = &status.config_error {
            warnings.push(format!(
                "Configuração inválida, a anterior continua em uso: {e}"
            ));
        }
        for (channel, e) in &status.alert_channel_errors {
            warnings.push(format!(
                "Canal de alertas {channel} recusa as mensagens (corrigir a configuração): {e}"
            ));
        }
        if let Some(e) = &status.alert_store_error {
            warnings.push(format!(
                "Banco de alertas inutilizável, histórico só em memória: {e}"
            ));
        }
    }
    if !warnings.is_empty() {
        text.push_str("\nAtenção:\n");
        for w in warnings {
            let _ = writeln!(text, "⚠ {w}");
        }
    }
    text
}
