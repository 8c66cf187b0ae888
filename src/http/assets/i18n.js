// The dashboard's words, pt-BR first and English.
const words = {
  'pt-BR': {
    'nav.overview': 'Visão geral', 'nav.playback': 'Gravações',
    'state.online': 'Online', 'state.recovering': 'Recuperando', 'state.offline': 'Offline',
    disk: 'Disco', cameras: 'Câmeras', camera: 'Câmera', day: 'Dia',
    'alerts.recent': 'Alertas recentes', 'alerts.none': 'Nenhum alerta.',
    'alert.ack': 'Reconhecer', 'alert.critical': 'ALERTA CRÍTICO', 'alert.resolved': 'resolvido',
    'alert.acked': 'reconhecido por {who} às {when}',
    'cam.lastData': 'Último dado', 'cam.recording': 'gravando', 'cam.notRecording': 'sem gravar',
    'cam.incident': 'Incidente', 'ago.s': 'há {n} s', 'ago.m': 'há {n} min', 'ago.h': 'há {n} h',
    'live.webrtc': '🟢 Latência mínima', 'live.hls': '🟡 Modo estável',
    'live.connecting': '⏳ Conectando', 'live.failed': '🔴 Sem vídeo', 'live.full': 'Tela cheia',
    'mtx.up': 'MediaMTX ativo', 'mtx.down': 'MediaMTX parado', 'conn.lost': 'reconectando…',
    'pb.prev': '◀ Falha anterior', 'pb.next': 'Próxima falha ▶', 'pb.none': 'Sem gravações neste dia.',
    'disk.capacity': 'cabem {n} dias', 'disk.untilFull': 'Espaço livre chega ao mínimo em {n} dias; depois as gravações mais antigas são apagadas',
    'disk.neverFull': 'A retenção mantém o espaço livre acima do mínimo',
    'cam.retention': 'Retenção: {have} de {need} dias',
    'retention.evictions': 'apagadas por falta de espaço', 'retention.disk_too_small': 'disco pequeno demais',
    'retention.footage_missing': 'gravações faltando',
    'login.title': 'Entrar', 'login.user': 'Usuário', 'login.password': 'Senha', 'login.submit': 'Entrar',
    'login.wrong': 'Usuário ou senha incorretos.', 'login.locked': 'Muitas tentativas: acesso bloqueado por alguns minutos.',
    'login.unreachable': 'O servidor não responde.', logout: 'Sair',
    'ex.title': 'Exportar evidência', 'ex.start': 'Início', 'ex.end': 'Fim',
    'ex.reason': 'Motivo (ofício, processo)', 'ex.here': 'Usar posição atual', 'ex.go': 'Exportar evidência',
    'ex.working': 'Exportando… (um intervalo longo leva alguns minutos)',
    'ex.done': 'Exportação {id} concluída. Confira com: sha256sum -c SHA256SUMS',
    'ex.failed': 'A exportação falhou: {why}', 'ex.gaps': 'Sem gravação em: {gaps}',
    'ex.manifest': 'Manifesto (JSON)', 'ex.sums': 'SHA256SUMS',
    'ex.noSpace': 'Sem espaço para esta exportação: ela precisa de {needed} e há {available} livres no disco das exportações.',
    'ex.noSpaceFloor': ' Desses, {floor} são o mínimo livre das gravações (as exportações dividem o disco com elas).',
    'ex.noSpaceHint': ' Libere espaço ou exporte um intervalo menor.',
    'exl.title': 'Exportações feitas', 'exl.none': 'Nenhuma exportação.',
    'exl.reason': 'Motivo', 'exl.noReason': 'sem motivo informado',
    'exl.by': 'Exportada por {who} em {when}', 'exl.total': '{n} arquivo(s), {size} no total',
    'exl.failed': 'Não foi possível ler a lista de exportações: {why}',
    'pb.legend.disk': 'Gravado no disco (reproduzir)', 'pb.legend.bucket': 'Somente no backup (S3)',
    'pb.legend.gap': 'Sem gravação',
    'pb.inBucket': 'Somente no backup (S3), não está mais no disco da caixa e não pode ser reproduzido aqui: restaure com {cmd}',
    'pb.gap': 'Sem gravação: {cause}',
    'cause.camera_down': 'câmera fora do ar', 'cause.recording_stalled': 'gravação parada',
    'cause.mediamtx_down': 'MediaMTX parado', 'cause.disk_full': 'disco cheio',
    'cause.evicted': 'apagada por falta de espaço', 'cause.deleted': 'apagada (retenção)',
    'cause.before_camera_existed': 'antes de a câmera existir', 'cause.daemon_down': 'supervisor parado',
    'cause.unknown': 'causa desconhecida',
  },
  en: {
    'nav.overview': 'Overview', 'nav.playback': 'Recordings',
    'state.online': 'Online', 'state.recovering': 'Recovering', 'state.offline': 'Offline',
    disk: 'Disk', cameras: 'Cameras', camera: 'Camera', day: 'Day',
    'alerts.recent': 'Recent alerts', 'alerts.none': 'No alerts.',
    'alert.ack': 'Acknowledge', 'alert.critical': 'CRITICAL ALERT', 'alert.resolved': 'resolved',
    'alert.acked': 'acknowledged by {who} at {when}',
    'cam.lastData': 'Last data', 'cam.recording': 'recording', 'cam.notRecording': 'not recording',
    'cam.incident': 'Incident', 'ago.s': '{n} s ago', 'ago.m': '{n} min ago', 'ago.h': '{n} h ago',
    'live.webrtc': '🟢 Minimum latency', 'live.hls': '🟡 Stable mode',
    'live.connecting': '⏳ Connecting', 'live.failed': '🔴 No video', 'live.full': 'Full screen',
    'mtx.up': 'MediaMTX up', 'mtx.down': 'MediaMTX down', 'conn.lost': 'reconnecting…',
    'pb.prev': '◀ Previous gap', 'pb.next': 'Next gap ▶', 'pb.none': 'No recordings on this day.',
    'disk.capacity': 'holds {n} days', 'disk.untilFull': 'Free space reaches the floor in {n} days; then the oldest footage is deleted',
    'disk.neverFull': 'Retention keeps the free space above the floor',
    'cam.retention': 'Retention: {have} of {need} days',
    'retention.evictions': 'deleted for space', 'retention.disk_too_small': 'disk too small',
    'retention.footage_missing': 'footage missing',
    'login.title': 'Log in', 'login.user': 'User', 'login.password': 'Password', 'login.submit': 'Log in',
    'login.wrong': 'Wrong user or password.', 'login.locked': 'Too many attempts: locked for a few minutes.',
    'login.unreachable': 'The server does not answer.', logout: 'Log out',
    'ex.title': 'Export evidence', 'ex.start': 'Start', 'ex.end': 'End',
    'ex.reason': 'Reason (letter, case)', 'ex.here': 'Use current position', 'ex.go': 'Export evidence',
    'ex.working': 'Exporting… (a long range takes a few minutes)',
    'ex.done': 'Export {id} done. Verify with: sha256sum -c SHA256SUMS',
    'ex.failed': 'The export failed: {why}', 'ex.gaps': 'No recording in: {gaps}',
    'ex.manifest': 'Manifest (JSON)', 'ex.sums': 'SHA256SUMS',
    'ex.noSpace': 'Not enough space for this export: it needs {needed} and {available} are free on the exports disk.',
    'ex.noSpaceFloor': ' Of those, {floor} are the recordings\' free-space floor (the exports share their disk).',
    'ex.noSpaceHint': ' Free some space or export a shorter range.',
    'exl.title': 'Exports made', 'exl.none': 'No exports.',
    'exl.reason': 'Reason', 'exl.noReason': 'no reason given',
    'exl.by': 'Exported by {who} at {when}', 'exl.total': '{n} file(s), {size} in all',
    'exl.failed': 'Cannot read the list of exports: {why}',
    'pb.legend.disk': 'Recorded on disk (play)', 'pb.legend.bucket': 'Only in the backup (S3)',
    'pb.legend.gap': 'No recording',
    'pb.inBucket': 'Only in the backup (S3), no longer on the box\'s disk, so it cannot be played here: restore it with {cmd}',
    'pb.gap': 'No recording: {cause}',
    'cause.camera_down': 'camera down', 'cause.recording_stalled': 'recording stalled',
    'cause.mediamtx_down': 'MediaMTX down', 'cause.disk_full': 'disk full',
    'cause.evicted': 'deleted for space', 'cause.deleted': 'deleted (retention)',
    'cause.before_camera_existed': 'before the camera existed', 'cause.daemon_down': 'supervisor down',
    'cause.unknown': 'unknown cause',
  },
};

let lang = localStorage.getItem('vms.lang') || 'pt-BR';

export function t(key, vars = {}) {
  const s = (words[lang] && words[lang][key]) || words['pt-BR'][key] || key;
  return s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? '');
}

export function language() { return lang; }

export function setLanguage(l) {
  lang = words[l] ? l : 'pt-BR';
  localStorage.setItem('vms.lang', lang);
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  document.dispatchEvent(new CustomEvent('vms-language'));
}
