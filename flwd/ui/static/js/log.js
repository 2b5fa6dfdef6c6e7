// The run's output: a compact line store and a virtualised view of it.
//
// A million lines must stay responsive, so:
// - lines are kept in chunks of 4096 joined into one string each (plus a Uint32Array of
//   offsets), with a byte of flags and a step number per line in typed arrays — no
//   object, and no DOM node, per line;
// - the view has a fixed row height and puts only the rows on screen (and a few more)
//   in the DOM; a spacer gives the scroll bar its size (capped, with the scroll position
//   scaled, because browsers cap an element's height);
// - ANSI colours (SGR) are parsed only for the rows being drawn;
// - search runs a regular expression over the joined chunks, not line by line.
import { h, fill } from './dom.js';

const BITS = 12;
const CHUNK = 1 << BITS;
const MAX_HEIGHT = 8_000_000; // px: below every browser's limit on an element's height

export const STDERR = 1;
export const META = 2;
export const FAILED = 4;

export class LogStore {
  constructor() {
    this.n = 0;
    this.flags = new Uint8Array(CHUNK);
    this.steps = new Uint16Array(CHUNK);
    this.chunks = []; // sealed chunks: CHUNK lines joined with '\n'
    this.offsets = []; // per sealed chunk: CHUNK + 1 starts
    this.tail = []; // the open chunk's lines
  }

  push(text, flags = 0, step = 0) {
    if (this.n === this.flags.length) {
      const flagsMore = new Uint8Array(this.n * 2);
      flagsMore.set(this.flags);
      this.flags = flagsMore;
      const stepsMore = new Uint16Array(this.n * 2);
      stepsMore.set(this.steps);
      this.steps = stepsMore;
    }
    this.flags[this.n] = flags;
    this.steps[this.n] = step;
    this.tail.push(text);
    this.n += 1;
    if (this.tail.length === CHUNK) this.seal();
    return this.n - 1;
  }

  seal() {
    const starts = new Uint32Array(CHUNK + 1);
    let pos = 0;
    for (let i = 0; i < CHUNK; i++) {
      starts[i] = pos;
      pos += this.tail[i].length + 1;
    }
    starts[CHUNK] = pos;
    this.chunks.push(this.tail.join('\n') + '\n');
    this.offsets.push(starts);
    this.tail = [];
  }

  text(i) {
    const c = i >>> BITS;
    if (c < this.chunks.length) {
      const starts = this.offsets[c];
      const j = i & (CHUNK - 1);
      return this.chunks[c].slice(starts[j], starts[j + 1] - 1);
    }
    return this.tail[i - this.chunks.length * CHUNK];
  }

  /** Lines (indices, ascending, at most `limit`) where `re` (flag g) matches. */
  find(re, limit = 1_000_000) {
    const out = [];
    for (let c = 0; c < this.chunks.length && out.length < limit; c++) {
      const text = this.chunks[c];
      const starts = this.offsets[c];
      re.lastIndex = 0;
      let m;
      while ((m = re.exec(text)) !== null && out.length < limit) {
        let lo = 0;
        let hi = CHUNK; // starts[lo] <= m.index < starts[hi]
        while (hi - lo > 1) {
          const mid = (lo + hi) >> 1;
          if (starts[mid] <= m.index) lo = mid; else hi = mid;
        }
        out.push(c * CHUNK + lo);
        re.lastIndex = starts[lo + 1]; // one hit per line is enough
      }
    }
    const base = this.chunks.length * CHUNK;
    for (let j = 0; j < this.tail.length && out.length < limit; j++) {
      re.lastIndex = 0;
      if (re.test(this.tail[j])) out.push(base + j);
    }
    return out;
  }
}

// -- ANSI SGR → segments ---------------------------------------------------------------

// CSI sequences (SGR among them), OSC strings, and two-character escapes.
const ESC_RE = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;
const CUBE = [0, 95, 135, 175, 215, 255];

function rgb256(n) {
  if (n >= 232) { const g = 8 + 10 * (n - 232); return `rgb(${g},${g},${g})`; }
  const i = n - 16;
  return `rgb(${CUBE[Math.floor(i / 36)]},${CUBE[Math.floor(i / 6) % 6]},${CUBE[i % 6]})`;
}

function colour(params, i) {
  // 38;5;n or 38;2;r;g;b: [colour, how many parameters it used]
  if (params[i + 1] === 5 && params[i + 2] !== undefined) {
    const n = params[i + 2];
    return [n < 16 ? n : rgb256(n), 3];
  }
  if (params[i + 1] === 2 && params[i + 4] !== undefined) {
    return [`rgb(${params[i + 2]},${params[i + 3]},${params[i + 4]})`, 5];
  }
  return [null, 1];
}

function without(style, ...keys) {
  const out = { ...style };
  for (const key of keys) delete out[key];
  return out;
}

/** A terminal line → [{text, bold, dim, italic, underline, fg, bg}] (fg/bg: 0–15 or "rgb()"). */
export function ansiSegments(line) {
  let text = line;
  if (text.includes('\r')) {
    // A progress bar rewrites its line: the terminal shows what came after the last \r.
    text = text.replace(/\r+$/, '');
    text = text.slice(text.lastIndexOf('\r') + 1);
  }
  if (!text.includes('\x1b')) return [{ text }];
  const out = [];
  let style = {};
  let last = 0;
  ESC_RE.lastIndex = 0;
  let m;
  while ((m = ESC_RE.exec(text)) !== null) {
    if (m.index > last) out.push({ text: text.slice(last, m.index), ...style });
    last = ESC_RE.lastIndex;
    if (m[0].length === 0) { ESC_RE.lastIndex += 1; continue; }
    if (m[2] !== 'm') continue; // cursor movement and the like: dropped
    const params = m[1] === '' ? [0] : m[1].split(/[;:]/).map((p) => Number(p) || 0);
    for (let i = 0; i < params.length; i++) {
      const p = params[i];
      if (p === 0) style = {};
      else if (p === 1) style = { ...style, bold: true };
      else if (p === 2) style = { ...style, dim: true };
      else if (p === 3) style = { ...style, italic: true };
      else if (p === 4) style = { ...style, underline: true };
      else if (p === 22) style = without(style, 'bold', 'dim');
      else if (p === 23) style = without(style, 'italic');
      else if (p === 24) style = without(style, 'underline');
      else if (p >= 30 && p <= 37) style = { ...style, fg: p - 30 };
      else if (p >= 90 && p <= 97) style = { ...style, fg: p - 90 + 8 };
      else if (p === 39) style = without(style, 'fg');
      else if (p >= 40 && p <= 47) style = { ...style, bg: p - 40 };
      else if (p >= 100 && p <= 107) style = { ...style, bg: p - 100 + 8 };
      else if (p === 49) style = without(style, 'bg');
      else if (p === 38 || p === 48) {
        const [c, used] = colour(params, i);
        style = c === null ? style : { ...style, [p === 38 ? 'fg' : 'bg']: c };
        i += used - 1;
      }
    }
  }
  if (last < text.length) out.push({ text: text.slice(last), ...style });
  return out;
}

/** The text a line shows (escapes removed): what search highlights. */
export function plainText(line) {
  return ansiSegments(line).map((s) => s.text).join('');
}

function segmentEl(seg, text) {
  const classes = [];
  if (seg.bold) classes.push('a-b');
  if (seg.dim) classes.push('a-d');
  if (seg.italic) classes.push('a-i');
  if (seg.underline) classes.push('a-u');
  if (typeof seg.fg === 'number') classes.push('f' + seg.fg);
  if (typeof seg.bg === 'number') classes.push('g' + seg.bg);
  if (!classes.length && seg.fg === undefined && seg.bg === undefined) return document.createTextNode(text);
  const span = document.createElement('span');
  if (classes.length) span.className = classes.join(' ');
  // Colours outside the 16-colour palette: set through the CSSOM (CSP allows that).
  if (typeof seg.fg === 'string') span.style.color = seg.fg;
  if (typeof seg.bg === 'string') span.style.backgroundColor = seg.bg;
  span.textContent = text;
  return span;
}

/** A line's content as nodes: coloured segments, with `re`'s matches in <mark>. */
function lineNodes(line, re) {
  const segs = ansiSegments(line);
  const nodes = [];
  if (!re) {
    for (const seg of segs) if (seg.text) nodes.push(segmentEl(seg, seg.text));
    return nodes;
  }
  const whole = segs.map((s) => s.text).join('');
  const ranges = [];
  re.lastIndex = 0;
  let m;
  while ((m = re.exec(whole)) !== null && ranges.length < 100) {
    if (m[0].length === 0) { re.lastIndex += 1; continue; }
    ranges.push([m.index, m.index + m[0].length]);
  }
  let pos = 0;
  let r = 0;
  for (const seg of segs) {
    let start = 0;
    while (start < seg.text.length) {
      const at = pos + start;
      while (r < ranges.length && ranges[r][1] <= at) r++;
      const inside = r < ranges.length && ranges[r][0] <= at;
      const until = r >= ranges.length ? seg.text.length
        : (inside ? ranges[r][1] : ranges[r][0]) - pos;
      const end = Math.min(seg.text.length, until);
      const node = segmentEl(seg, seg.text.slice(start, end));
      if (inside) {
        const mark = document.createElement('mark');
        mark.append(node);
        nodes.push(mark);
      } else {
        nodes.push(node);
      }
      start = end;
    }
    pos += seg.text.length;
  }
  return nodes;
}

// -- the view -------------------------------------------------------------------------------

export class LogView {
  /** `stepName(i)`: the name shown for step number i (0: none). */
  constructor(store, { stepName = () => '', onFollow = () => {} } = {}) {
    this.store = store;
    this.stepName = stepName;
    this.onFollow = onFollow;
    this.rowH = 0;
    this.follow = true;
    this.current = -1;
    this.highlight = null;
    this.filterStep = 0;
    this.index = null; // lines of the filtered step (a growable Uint32Array) and their count
    this.indexN = 0;
    this.pending = false;
    this.spacer = h('div', { class: 'log-spacer' });
    this.rows = h('div', { class: 'log-rows' });
    this.el = h('div', { class: 'log', tabindex: '0', role: 'region', 'aria-label': 'Run output' },
      this.spacer, this.rows);
    this.el.addEventListener('scroll', () => this.scrolled(), { passive: true });
    if (typeof ResizeObserver === 'function') new ResizeObserver(() => this.schedule()).observe(this.el);
  }

  count() { return this.index ? this.indexN : this.store.n; }
  lineAt(k) { return this.index ? this.index[k] : k; }

  /** Lines were added to the store (or something changed): redraw on the next frame. */
  appended(from) {
    if (this.index) {
      for (let i = from; i < this.store.n; i++) if (this.store.steps[i] === this.filterStep) this.pushIndex(i);
    }
    this.schedule();
  }

  pushIndex(line) {
    if (this.indexN === this.index.length) {
      const more = new Uint32Array(this.index.length * 2);
      more.set(this.index);
      this.index = more;
    }
    this.index[this.indexN++] = line;
  }

  /** Show only step `step` (its number), or every line (0). */
  setFilter(step) {
    this.filterStep = step;
    this.index = null;
    this.indexN = 0;
    if (step) {
      this.index = new Uint32Array(1024);
      for (let i = 0; i < this.store.n; i++) if (this.store.steps[i] === step) this.pushIndex(i);
    }
    this.schedule();
  }

  setHighlight(re) { this.highlight = re; this.schedule(); }

  setFollow(on) {
    if (this.follow !== on) { this.follow = on; this.onFollow(on); }
    if (on) this.schedule();
  }

  scrolled() {
    if (!this.programmatic) {
      const atEnd = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - 2;
      this.setFollow(atEnd);
    }
    this.programmatic = false;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  measure() {
    const probe = h('div', { class: 'log-row' }, h('span', { class: 'tx' }, 'M'));
    this.rows.append(probe);
    this.rowH = probe.getBoundingClientRect().height || 18;
    probe.remove();
  }

  geometry() {
    const count = this.count();
    const viewH = this.el.clientHeight || 400;
    const total = count * this.rowH;
    const height = Math.min(total, MAX_HEIGHT);
    const scale = total > height ? (height - viewH) / (total - viewH) : 1;
    return { count, viewH, total, height, scale };
  }

  /** Scroll so that store line `line` is in the middle, and mark it. */
  reveal(line) {
    if (!this.rowH) this.measure();
    let k = line;
    if (this.index) {
      let lo = 0;
      let hi = this.indexN;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (this.index[mid] < line) lo = mid + 1; else hi = mid; }
      k = lo;
    }
    this.current = line;
    this.setFollow(false);
    const g = this.geometry();
    this.spacer.style.height = g.height + 'px';
    this.programmatic = true;
    this.el.scrollTop = Math.max(0, (k * this.rowH - g.viewH / 2 + this.rowH / 2) * g.scale);
    this.render();
  }

  render() {
    if (!this.el.isConnected) return;
    if (!this.rowH) this.measure();
    const g = this.geometry();
    this.spacer.style.height = g.height + 'px';
    if (this.follow && this.el.scrollTop < g.height - g.viewH) {
      this.programmatic = true;
      this.el.scrollTop = g.height;
    }
    const top = this.el.scrollTop;
    const virt = top / g.scale;
    const first = Math.max(0, Math.min(Math.floor(virt / this.rowH), g.count - 1));
    const last = Math.min(g.count, first + Math.ceil(g.viewH / this.rowH) + 2);
    this.rows.style.transform = `translateY(${top - (virt - first * this.rowH)}px)`;
    const wanted = last - first;
    while (this.rows.children.length > wanted) this.rows.lastChild.remove();
    for (let k = first; k < last; k++) {
      const line = this.lineAt(k);
      const flags = this.store.flags[line];
      const step = this.store.steps[line];
      let cls = 'log-row';
      if (flags & STDERR) cls += ' err';
      if (flags & META) cls += ' meta';
      if (flags & FAILED) cls += ' failed';
      if (line === this.current) cls += ' current';
      const row = this.rows.children[k - first] || this.rows.appendChild(document.createElement('div'));
      row.className = cls;
      fill(row,
        h('span', { class: 'ln' }, String(line + 1)),
        h('span', { class: 'ch' }, flags & STDERR ? 'err' : ''),
        step && this.stepName(step) ? h('span', { class: 'sn' }, this.stepName(step)) : null,
        h('span', { class: 'tx' }, lineNodes(this.store.text(line), this.highlight)));
    }
  }
}
