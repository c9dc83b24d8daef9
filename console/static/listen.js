// Listen-in: read the console's frame stream with fetch, decode mu-law / PCM16 here, play both
// legs with Web Audio (agent left, customer right) a moment behind live.
"use strict";

const MULAW = (() => {
  const table = new Float32Array(256);
  for (let i = 0; i < 256; i++) {
    const u = ~i & 0xff;
    const sign = u & 0x80, exponent = (u >> 4) & 0x07, mantissa = u & 0x0f;
    let sample = ((mantissa << 3) + 0x84) << exponent;
    sample -= 0x84;
    table[i] = (sign ? -sample : sample) / 32768;
  }
  return table;
})();

class LiveListener {
  constructor(callId, statusElement) {
    this.callId = callId;
    this.status = statusElement;
    this.frames = 0;
    this.bytes = 0;
    this.delayMs = null;
    this.abort = new AbortController();
    this.nextTime = { 0: 0, 1: 0 };
    this.leadS = 0.25; // jitter buffer: play this far behind the newest frame
  }

  async start() {
    this.context = new AudioContext();
    this.pan = [-0.6, 0.6].map((value) => {
      const node = new StereoPannerNode(this.context, { pan: value });
      node.connect(this.context.destination);
      return node;
    });
    this.show("connecting…");
    try {
      const response = await fetch("/api/live/calls/" + encodeURIComponent(this.callId) + "/audio", {
        credentials: "same-origin", signal: this.abort.signal,
      });
      if (!response.ok) { this.show("listen-in refused (" + response.status + ")"); return; }
      await this.read(response.body.getReader());
      this.show("call ended");
    } catch (e) {
      if (e.name !== "AbortError") this.show("listen-in lost: " + e.message);
    }
  }

  async read(reader) {
    let buffer = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
      let offset = 0;
      while (buffer.length - offset >= 4) {
        const view = new DataView(buffer.buffer, buffer.byteOffset + offset);
        const length = view.getUint32(0, true);
        if (buffer.length - offset < 4 + length) break;
        this.frame(new DataView(buffer.buffer, buffer.byteOffset + offset + 4, length));
        offset += 4 + length;
      }
      buffer = buffer.slice(offset);
    }
  }

  frame(view) {
    const leg = view.getUint8(0), codec = view.getUint8(1), rate = view.getUint16(2, true);
    const capturedAt = view.getFloat64(4, true);
    const payload = new Uint8Array(view.buffer, view.byteOffset + 12, view.byteLength - 12);
    let samples;
    if (codec === 2) {
      samples = new Float32Array(payload.length);
      for (let i = 0; i < payload.length; i++) samples[i] = MULAW[payload[i]];
    } else {
      const pcm = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      samples = new Float32Array(payload.length / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = pcm.getInt16(i * 2, true) / 32768;
    }
    const audio = this.context.createBuffer(1, samples.length, rate);
    audio.copyToChannel(samples, 0);
    const node = new AudioBufferSourceNode(this.context, { buffer: audio });
    node.connect(this.pan[leg] || this.context.destination);
    const now = this.context.currentTime;
    let at = this.nextTime[leg];
    if (at < now + 0.02 || at > now + 1.0) at = now + this.leadS; // start, underrun, or drift past 1 s
    node.start(at);
    this.nextTime[leg] = at + audio.duration;
    this.frames += 1;
    this.bytes += payload.length;
    // Delay heard: capture -> now, plus how far ahead this frame is scheduled.
    this.delayMs = Math.round((cs.now() - capturedAt + (at - now)) * 1000);
    if (this.frames % 10 === 1) this.show(`listening · delay ${(this.delayMs / 1000).toFixed(2)} s`);
    this.status.dataset.frames = String(this.frames);
    this.status.dataset.bytes = String(this.bytes);
    this.status.dataset.delayMs = String(this.delayMs);
  }

  show(text) { this.status.textContent = text; }

  stop() {
    this.abort.abort();
    if (this.context) this.context.close();
    this.show("");
  }
}
