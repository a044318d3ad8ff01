// A time series chart drawn as SVG: several series of one unit over a
// time range, axes with round ticks, the value under the pointer, and
// zoom by dragging across the plot. Series of many points are drawn per
// pixel column (its first, lowest, highest and last value), so a week of
// values sampled every 100 ms costs no more to draw than the chart's
// width, and the chart redraws at most once per frame however fast
// points arrive.

const NS = 'http://www.w3.org/2000/svg';
const PAD = { left: 56, right: 12, top: 14, bottom: 26 };
export const COLORS = 8; // series-0 … series-7 in style.css

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// niceTicks answers round values from min to max, about count of them:
// steps of 1, 2 or 5 times a power of ten.
export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return { lo: 0, hi: 1, step: 0.2, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] };
  if (min === max) {
    const d = Math.abs(min) / 10 || 1;
    min -= d;
    max += d;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { lo, hi, step, ticks };
}

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const STEPS = [SEC, 2 * SEC, 5 * SEC, 10 * SEC, 15 * SEC, 30 * SEC, MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

// timeTicks answers times from..to (ms) on round local times, about
// count of them, and the step between them.
export function timeTicks(from, to, count = 6, offsetMin = new Date(from).getTimezoneOffset()) {
  const raw = (to - from) / Math.max(1, count);
  const step = STEPS.find((s) => s >= raw) || STEPS[STEPS.length - 1];
  const off = offsetMin * MIN; // round in local time
  const ticks = [];
  for (let t = Math.ceil((from - off) / step) * step + off; t <= to; t += step) ticks.push(t);
  return { step, ticks };
}

// timeLabel says a tick's time as precisely as its step needs.
export function timeLabel(t, step) {
  const d = new Date(t);
  if (step >= DAY) return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  const hm = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: step < MIN ? '2-digit' : undefined, hour12: false });
  return step >= HOUR && d.getHours() === 0 && d.getMinutes() === 0 ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) : hm;
}

// formatValue shows a value with as many digits as its axis step needs.
export function formatValue(v, step = 0) {
  if (!Number.isFinite(v)) return String(v);
  const digits = step > 0 && step < 1 ? Math.min(6, Math.ceil(-Math.log10(step))) : 0;
  return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-4) ? v.toExponential(2) : v.toFixed(digits);
}

// bisect answers the index of the first point at or after t.
export function bisect(points, t) {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// columns reduces points (sorted [time, value]) between from and to to at
// most four per pixel column of width: each column's first, lowest,
// highest and last, in time order, which keeps every peak of the line.
export function columns(points, from, to, width) {
  const a = Math.max(0, bisect(points, from) - 1);
  const b = Math.min(points.length, bisect(points, to) + 1);
  if (b - a <= width * 2) return points.slice(a, b);
  const out = [];
  const per = (to - from) / width;
  let col = null;
  let first;
  let low;
  let high;
  let last;
  const flush = () => {
    if (col === null) return;
    const seen = new Set();
    for (const p of [first, low, high, last].sort((x, y) => x[0] - y[0])) {
      if (!seen.has(p)) out.push(p);
      seen.add(p);
    }
  };
  for (let i = a; i < b; i++) {
    const p = points[i];
    const c = Math.floor((p[0] - from) / per);
    if (c !== col) {
      flush();
      col = c;
      first = low = high = last = p;
      continue;
    }
    if (p[1] < low[1]) low = p;
    if (p[1] > high[1]) high = p;
    last = p;
  }
  flush();
  return out;
}

// Chart draws series [{key, label, colour (0…COLORS-1), points}] of one
// unit over [from, to]. onZoom(from, to) is called when the user drags
// across the plot. Call update() after changing series or range: the
// drawing waits for the next frame, so many updates cost one drawing.
export class Chart {
  constructor({ unit = '', title = '', onZoom } = {}) {
    this.unit = unit;
    this.series = [];
    this.from = 0;
    this.to = 1;
    this.onZoom = onZoom;
    this.el = document.createElement('figure');
    this.el.className = 'chart';
    this.svg = svg('svg', { class: 'chart-svg', role: 'img', 'aria-label': title || `Chart${unit ? ` in ${unit}` : ''}` });
    this.tip = document.createElement('div');
    this.tip.className = 'chart-tip';
    this.tip.hidden = true;
    this.el.append(this.svg, this.tip);
    this.frame = 0;
    this.drag = null;
    this.hover = null;
    this.svg.addEventListener('pointerdown', (e) => this.down(e));
    this.svg.addEventListener('pointermove', (e) => this.move(e));
    this.svg.addEventListener('pointerup', (e) => this.up(e));
    this.svg.addEventListener('pointerleave', () => { this.hover = null; this.tip.hidden = true; this.update(); });
    this.resize = new ResizeObserver(() => this.update());
    this.resize.observe(this.el);
  }

  set(series, from, to) {
    this.series = series;
    this.from = from;
    this.to = to;
    this.update();
  }

  update() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  destroy() {
    this.resize.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
  }

  geometry() {
    const width = Math.max(240, this.el.clientWidth || 640);
    const height = Math.max(180, Math.min(320, Math.round(width * 0.32)));
    return { width, height, pw: width - PAD.left - PAD.right, ph: height - PAD.top - PAD.bottom };
  }

  draw() {
    const { width, height, pw, ph } = this.geometry();
    const { from, to } = this;
    let min = Infinity;
    let max = -Infinity;
    const drawn = this.series.map((s) => {
      const pts = columns(s.points, from, to, pw);
      for (const p of pts) {
        if (p[0] < from || p[0] > to) continue;
        if (p[1] < min) min = p[1];
        if (p[1] > max) max = p[1];
      }
      return { s, pts };
    });
    const y = niceTicks(min, max, Math.max(2, Math.round(ph / 50)));
    const sx = (t) => PAD.left + ((t - from) / (to - from || 1)) * pw;
    const sy = (v) => PAD.top + ph - ((v - y.lo) / (y.hi - y.lo || 1)) * ph;
    this.sx = sx;
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.svg.setAttribute('width', width);
    this.svg.setAttribute('height', height);
    const g = [];
    for (const v of y.ticks) {
      g.push(svg('line', { class: 'grid-line', x1: PAD.left, x2: PAD.left + pw, y1: sy(v), y2: sy(v) }));
      g.push(svg('text', { class: 'tick y', x: PAD.left - 6, y: sy(v) + 4 }, formatValue(v, y.step)));
    }
    const x = timeTicks(from, to, Math.max(2, Math.round(pw / 110)));
    for (const t of x.ticks) {
      g.push(svg('line', { class: 'grid-line', x1: sx(t), x2: sx(t), y1: PAD.top, y2: PAD.top + ph }));
      g.push(svg('text', { class: 'tick x', x: sx(t), y: height - 8 }, timeLabel(t, x.step)));
    }
    if (this.unit) g.push(svg('text', { class: 'unit', x: 4, y: PAD.top - 2 }, this.unit));
    const clip = `clip-${(Chart.seq = (Chart.seq || 0) + 1)}`;
    g.push(svg('clipPath', { id: clip }, svg('rect', { x: PAD.left, y: PAD.top - 2, width: pw, height: ph + 4 })));
    for (const { s, pts } of drawn) {
      if (!pts.length) continue;
      const d = pts.map((p, i) => `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
      g.push(svg('path', { class: `line series-${s.colour % COLORS}`, d, 'clip-path': `url(#${clip})`, 'data-series': s.key }));
      if (pts.length === 1) g.push(svg('circle', { class: `dot series-${s.colour % COLORS}`, cx: sx(pts[0][0]), cy: sy(pts[0][1]), r: 3 }));
    }
    if (!drawn.some((d) => d.pts.length)) {
      g.push(svg('text', { class: 'chart-empty', x: PAD.left + pw / 2, y: PAD.top + ph / 2 }, 'No values in this time range'));
    }
    if (this.drag && Math.abs(this.drag.x1 - this.drag.x0) > 1) {
      const a = Math.min(this.drag.x0, this.drag.x1);
      g.push(svg('rect', { class: 'zoom-box', x: a, y: PAD.top, width: Math.abs(this.drag.x1 - this.drag.x0), height: ph }));
    }
    if (this.hover !== null && !this.drag) this.drawHover(g, sx, sy, y.step);
    g.push(svg('rect', { class: 'plot', x: PAD.left, y: PAD.top, width: pw, height: ph }));
    this.svg.replaceChildren(...g);
    this.el.dataset.points = String(this.series.reduce((n, s) => n + s.points.length, 0));
  }

  drawHover(g, sx, sy, step) {
    const t = this.from + ((this.hover - PAD.left) / this.geometry().pw) * (this.to - this.from);
    const rows = [];
    let at = null;
    for (const s of this.series) {
      const i = bisect(s.points, t);
      const near = [s.points[i - 1], s.points[i]].filter(Boolean).sort((p, q) => Math.abs(p[0] - t) - Math.abs(q[0] - t))[0];
      if (!near || near[0] < this.from || near[0] > this.to) continue;
      at ??= near[0];
      g.push(svg('circle', { class: `dot series-${s.colour % COLORS}`, cx: sx(near[0]), cy: sy(near[1]), r: 3.5 }));
      rows.push(`${s.label}: ${formatValue(near[1], step / 10)}${this.unit ? ` ${this.unit}` : ''}`);
    }
    if (at === null) {
      this.tip.hidden = true;
      return;
    }
    g.push(svg('line', { class: 'hover-line', x1: sx(at), x2: sx(at), y1: PAD.top, y2: PAD.top + this.geometry().ph }));
    this.tip.textContent = `${new Date(at).toLocaleString()}\n${rows.join('\n')}`;
    this.tip.hidden = false;
    const left = sx(at) > this.geometry().width / 2;
    this.tip.style.left = left ? '' : `${sx(at) + 8}px`;
    this.tip.style.right = left ? `${this.geometry().width - sx(at) + 8}px` : '';
  }

  localX(e) {
    const r = this.svg.getBoundingClientRect();
    const { width, pw } = this.geometry();
    const x = ((e.clientX - r.left) / (r.width || 1)) * width;
    return Math.max(PAD.left, Math.min(PAD.left + pw, x));
  }

  down(e) {
    if (e.button !== 0) return;
    try {
      this.svg.setPointerCapture(e.pointerId); // a drag may end outside the chart
    } catch {
      // a pointer the browser no longer tracks: the drag ends on the chart
    }
    const x = this.localX(e);
    this.drag = { x0: x, x1: x };
  }

  move(e) {
    const x = this.localX(e);
    if (this.drag) this.drag.x1 = x;
    else this.hover = x;
    this.update();
  }

  up() {
    const d = this.drag;
    this.drag = null;
    this.update();
    if (!d || Math.abs(d.x1 - d.x0) < 6) return;
    const { pw } = this.geometry();
    const at = (x) => this.from + ((x - PAD.left) / pw) * (this.to - this.from);
    const a = at(Math.min(d.x0, d.x1));
    const b = at(Math.max(d.x0, d.x1));
    if (b - a >= 1000) this.onZoom?.(Math.round(a), Math.round(b));
  }
}
