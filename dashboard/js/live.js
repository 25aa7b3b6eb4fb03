// live.js — the live view of `rift run --live`.
//
// The controller rewrites live.js beside report.html once a second; it calls
// window.riftLive(run). A page opened from disk may load a script beside it
// but may not fetch a file, hence a script rather than run.json. Polling stops
// once the run has a verdict (the controller writes the finished run last).

const LV_PERIOD_MS = 1000;

export function lv_start(src, onData) {
  if (!/^[a-z0-9._-]+$/.test(src)) return null;
  let n = 0, timer = null, lastAt = 0;
  const state = { stopped: false, lastAt: () => lastAt };
  window.riftLive = (data) => {
    lastAt = Date.now();
    const done = !data || data.verdict !== 'running';
    if (done) stop();
    onData(data, done);
  };
  const poll = () => {
    const s = document.createElement('script');
    s.src = `${src}?n=${n++}`;
    const drop = () => { s.remove(); if (!state.stopped) timer = setTimeout(poll, LV_PERIOD_MS); };
    s.onload = drop;
    s.onerror = drop;
    document.head.appendChild(s);
  };
  function stop() {
    state.stopped = true;
    if (timer) clearTimeout(timer);
  }
  poll();
  state.stop = stop;
  return state;
}
