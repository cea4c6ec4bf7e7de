// Counterpart (idle): a Node sidecar that wakes every 100 ms to flush metrics and finds none, like
// a heartbeat or metrics flusher on a quiet host. Between ticks it sits in epoll_pwait with a real
// timeout and uses a negligible share of a core; it must be reported idle, not busy.
const pendingMetrics = [];

function flushMetrics() {
  if (pendingMetrics.length > 0) pendingMetrics.splice(0);
}

setInterval(flushMetrics, 100);
