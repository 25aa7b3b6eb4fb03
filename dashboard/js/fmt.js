// fmt.js — numbers with their units, as a person reads them.

// Microseconds to "394 µs", "12.3 ms", "1.25 s", "2 min 5 s".
export function fmt_us(us) {
  if (us === null || us === undefined || Number.isNaN(us)) return '—';
  const a = Math.abs(us);
  if (a < 1000) return `${Math.round(us)} µs`;
  if (a < 1e6) return `${fmt_sig(us / 1000)} ms`;
  if (a < 120e6) return `${fmt_sig(us / 1e6)} s`;
  const m = Math.floor(a / 60e6);
  return `${us < 0 ? '-' : ''}${m} min ${Math.round((a - m * 60e6) / 1e6)} s`;
}

// A time on the run's axis (seconds since start), to the millisecond.
export function fmt_t(us) {
  if (us === null || us === undefined) return '—';
  return `${(us / 1e6).toFixed(3)} s`;
}

// Three significant digits, no exponent.
export function fmt_sig(v) {
  const a = Math.abs(v);
  if (a >= 100) return String(Math.round(v));
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export function fmt_num(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return fmt_sig(v);
}

export function fmt_bytes(b) {
  if (b === null || b === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return `${i ? fmt_sig(b) : b} ${units[i]}`;
}

// A scenario value for display (limits, parameters): JSON for non-strings.
export function fmt_value(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return fmt_num(v);
  return JSON.stringify(v);
}

// Keep long values (64-byte KV values) readable in a cell.
export function fmt_clip(s, n) {
  const str = String(s);
  return str.length > n ? `${str.slice(0, n - 1)}…` : str;
}
