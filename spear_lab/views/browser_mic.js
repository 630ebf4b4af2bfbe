// The browser microphone widget (anywidget ES module) of spear_lab.views.BrowserMic.
//
// One capture per widget model (however many views show it): getUserMedia -> an
// AudioWorklet that mixes to mono, resamples to the model's `rate` (windowed-sinc
// interpolation) and cuts `chunk_ms` chunks of pcm16, each sent to the kernel as one
// msg:custom {type:"pcm", pos, rate, t} with the samples as a binary buffer.  State
// changes go as {type:"state", state, error, device, input_rate}.  Views show the state,
// a level meter and a start/stop button.

const WORKLET = `
class SpearMicCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.rate = o.rate;
    this.ratio = sampleRate / o.rate;          // input samples per output sample
    this.chunk = o.chunk;
    this.gapMs = o.gapMs;
    this.R = 16;                               // kernel radius, input samples
    this.fc = Math.min(1, 1 / this.ratio) * 0.9;
    this.x = new Float32Array(8192);
    this.xn = this.R;                          // R leading zeros
    this.x0 = -this.R;                         // global index of x[0]
    this.j = 0;                                // next output sample (global)
    this.out = new Int16Array(this.chunk);
    this.on = 0;
    this.pos = 0;                              // stream position of out[0], gaps included
    this.sq = 0;
    this.holdMs = o.holdMs;
    this.wall0 = 0;
    this.suspect = 0;
  }
  // Audio that never came (a suspended context, a stalled device) shows as wall time
  // running ahead of the samples: once more than gapMs is missing for over holdMs (a late
  // audio thread catches up within that), the missing part is counted into pos.
  gapCheck(wall) {
    if (!this.wall0) {
      this.wall0 = wall - 1000 * this.chunk / this.rate;
      return;
    }
    const missing = (wall - this.wall0) * this.rate / 1000 - (this.pos + this.chunk);
    if (missing * 1000 / this.rate <= this.gapMs) {
      this.suspect = 0;
      return;
    }
    if (!this.suspect) {
      this.suspect = wall;
      this.least = missing;
    }
    this.least = Math.min(this.least, missing);
    if (wall - this.suspect >= this.holdMs) {
      this.pos += Math.round(this.least);
      this.suspect = 0;
    }
  }
  weight(d) {
    if (Math.abs(d) < 1e-9) return this.fc;
    const a = Math.PI * d;
    const w = 0.42 + 0.5 * Math.cos(a / this.R) + 0.08 * Math.cos(2 * a / this.R);
    return Math.sin(this.fc * a) / a * w;
  }
  append(input) {
    const n = input[0].length, c = input.length;
    if (this.xn + n > this.x.length) {
      const keep = Math.floor(this.j * this.ratio) - this.R - this.x0;
      if (keep > 0) {
        this.x.copyWithin(0, keep, this.xn);
        this.xn -= keep;
        this.x0 += keep;
      }
      if (this.xn + n > this.x.length) {
        const bigger = new Float32Array(2 * (this.xn + n));
        bigger.set(this.x.subarray(0, this.xn));
        this.x = bigger;
      }
    }
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += input[k][i];
      this.x[this.xn + i] = s / c;
    }
    this.xn += n;
  }
  emit(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.sq += s * s;
    this.out[this.on++] = Math.max(-32768, Math.min(32767, Math.round(s * 32768)));
    if (this.on < this.chunk) return;
    const wall = Date.now();
    this.gapCheck(wall);
    const pcm = this.out.buffer;
    this.port.postMessage({pos: this.pos, t: wall, rms: Math.sqrt(this.sq / this.chunk), pcm}, [pcm]);
    this.pos += this.chunk;
    this.out = new Int16Array(this.chunk);
    this.on = 0;
    this.sq = 0;
  }
  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || input[0].length === 0) return true;
    this.append(input);
    const end = this.x0 + this.xn;
    if (this.ratio === 1) {
      for (; this.j < end; this.j++) this.emit(this.x[this.j - this.x0]);
      return true;
    }
    for (;;) {
      const p = this.j * this.ratio;
      const i = Math.floor(p);
      if (i + this.R >= end) break;
      let acc = 0, wsum = 0;
      for (let k = i - this.R + 1; k <= i + this.R; k++) {
        const w = this.weight(p - k);
        acc += this.x[k - this.x0] * w;
        wsum += w;
      }
      this.emit(acc / wsum);
      this.j++;
    }
    return true;
  }
}
registerProcessor("spear-mic-capture", SpearMicCapture);
`;

const GAP_MS = 200;
const HOLD_MS = 1000;
// By the model's `capture_id` (views may get different model wrappers, and a view is
// re-rendered when the kernel updates the output's static copy): one capture per widget.
const captures = new Map();

class Capture {
  constructor(model) {
    this.model = model;
    this.state = "idle";
    this.error = null;
    this.device = null;
    this.level = 0;
    this.chunks = 0;
    this.listeners = new Set();
  }

  notify() {
    for (const f of this.listeners) f(this);
  }

  report(state, error) {
    this.state = state;
    this.error = error || null;
    this.model.send({
      type: "state", state, error: this.error, device: this.device,
      input_rate: this.ctx ? this.ctx.sampleRate : null,
    });
    this.notify();
  }

  async start() {
    if (this.state === "prompt" || this.state === "granted") return;
    const md = navigator.mediaDevices;
    if (!md || !md.getUserMedia) {
      this.report("error", "getUserMedia is not available here (the page needs https or localhost)");
      return;
    }
    this.report("prompt");
    try {
      this.stream = await md.getUserMedia({
        audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false},
        video: false,
      });
    } catch (e) {
      const denied = e && (e.name === "NotAllowedError" || e.name === "SecurityError");
      this.report(denied ? "denied" : "error", `${e && e.name}: ${e && e.message}`);
      return;
    }
    try {
      await this.connect();
    } catch (e) {
      this.teardown();
      this.report("error", `audio setup failed: ${e && e.name}: ${e && e.message}`);
    }
  }

  async connect() {
    const track = this.stream.getAudioTracks()[0];
    this.device = track ? track.label : null;
    if (track) {
      track.addEventListener("ended", () => {
        if (this.state !== "granted") return;
        this.teardown();
        this.report("ended", "the microphone track ended (device removed or permission revoked)");
      });
    }
    const ctx = new AudioContext();
    this.ctx = ctx;
    const url = URL.createObjectURL(new Blob([WORKLET], {type: "text/javascript"}));
    try {
      await ctx.audioWorklet.addModule(url);
    } finally {
      URL.revokeObjectURL(url);
    }
    const rate = this.model.get("rate");
    const chunk = Math.max(1, Math.round(rate * this.model.get("chunk_ms") / 1000));
    const node = new AudioWorkletNode(ctx, "spear-mic-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: {rate, chunk, gapMs: GAP_MS, holdMs: HOLD_MS},
    });
    node.port.onmessage = (e) => this.onChunk(e.data, rate);
    const mute = ctx.createGain();
    mute.gain.value = 0;
    ctx.createMediaStreamSource(this.stream).connect(node);
    node.connect(mute).connect(ctx.destination);
    this.node = node;
    if (ctx.state !== "running") {
      await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, 1000))]);
    }
    if (ctx.state !== "running") {
      this.teardown();
      this.report("error", "the audio context did not start: click Start microphone");
      return;
    }
    this.report("granted");
  }

  onChunk(d, rate) {
    if (this.state !== "granted") return;
    this.chunks += 1;
    this.level = d.rms;
    this.model.send({type: "pcm", pos: d.pos, rate, t: d.t, sent: Date.now()}, undefined, [d.pcm]);
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        this.notify();
      });
    }
  }

  stop() {
    this.teardown();
    this.report("stopped", "stopped by the user");
  }

  teardown() {
    if (this.node) this.node.port.onmessage = null;
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    if (this.ctx && this.ctx.state !== "closed") this.ctx.close();
    this.node = this.stream = this.ctx = null;
    this.level = 0;
  }
}

function captureOf(model) {
  const id = model.get("capture_id");
  let cap = captures.get(id);
  if (!cap) {
    cap = new Capture(model);
    captures.set(id, cap);
  }
  cap.model = model;
  return cap;
}

const LABELS = {
  idle: "not started", prompt: "asking for permission…", granted: "listening",
  denied: "permission refused", ended: "microphone gone", error: "error", stopped: "stopped",
};

function render({model, el}) {
  const cap = captureOf(model);
  el.spearCapture = cap;  // for tests and debugging in the page's console
  el.classList.add("spear-mic");
  el.innerHTML = `
    <div class="spear-mic-row">
      <button class="spear-mic-button" type="button"></button>
      <span class="spear-mic-state"></span>
      <span class="spear-mic-meter"><span class="spear-mic-bar"></span></span>
      <span class="spear-mic-info"></span>
    </div>
    <div class="spear-mic-error"></div>`;
  const button = el.querySelector(".spear-mic-button");
  const state = el.querySelector(".spear-mic-state");
  const bar = el.querySelector(".spear-mic-bar");
  const info = el.querySelector(".spear-mic-info");
  const error = el.querySelector(".spear-mic-error");
  const update = () => {
    el.dataset.state = cap.state;
    el.dataset.chunks = String(cap.chunks);
    state.textContent = `🎙 ${LABELS[cap.state] || cap.state}`;
    const db = cap.level > 0 ? 20 * Math.log10(cap.level) : -90;
    bar.style.width = `${Math.max(0, Math.min(100, (db + 60) * 100 / 60))}%`;
    info.textContent = cap.state === "granted"
      ? `${cap.device || "microphone"} → ${model.get("rate")} Hz · ${(cap.chunks * model.get("chunk_ms") / 1000).toFixed(1)} s sent`
      : "";
    error.textContent = cap.error && cap.state !== "stopped" ? cap.error : "";
    button.textContent = cap.state === "granted" || cap.state === "prompt" ? "Stop" : "Start microphone";
    button.disabled = cap.state === "prompt";
  };
  button.addEventListener("click", () => {
    if (cap.state === "granted") cap.stop();
    else cap.start();
  });
  cap.listeners.add(update);
  update();
  if (model.get("autostart") && cap.state === "idle") cap.start();
  return () => cap.listeners.delete(update);
}

function initialize({model}) {
  const id = model.get("capture_id");
  model.on("msg:custom", (msg) => {
    const cap = captures.get(id);
    if (msg && msg.type === "stop" && cap) cap.teardown();
  });
  return () => {
    const cap = captures.get(id);
    if (cap) cap.teardown();
    captures.delete(id);
  };
}

export default {initialize, render};
