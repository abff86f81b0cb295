// emojax page: talks only to the server that served it (/v1/... over HTTP and WebSockets).
"use strict";

const COLORS = {
  anger: "#c0392b", angry: "#c0392b", disgust: "#6b8e23", fear: "#7d3c98", fearful: "#7d3c98",
  happiness: "#e6a817", happy: "#e6a817", joy: "#e6a817", sadness: "#2e86c1", sad: "#2e86c1",
  surprise: "#16a085", surprised: "#16a085", neutral: "#7f8c8d", calm: "#95a5a6",
};
const state = { model: null, face: null, audio: null, text: "", faceImage: null };
const $ = (id) => document.getElementById(id);

function colorOf(label) { return COLORS[label] || "#555"; }

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// -- results -------------------------------------------------------------------------------
function bars(container, probabilities, top) {
  container.replaceChildren();
  const entries = Object.entries(probabilities || {}).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of entries) {
    const row = document.createElement("div");
    row.className = "bar" + (name === top ? " top" : "");
    row.dataset.label = name;
    row.innerHTML = `<span></span><span class="track"><span class="fill"></span></span><span></span>`;
    row.children[0].textContent = name;
    row.children[1].firstChild.style.width = `${(100 * p).toFixed(1)}%`;
    row.children[2].textContent = p.toFixed(3);
    container.appendChild(row);
  }
}

function resultBlock(container, title, label, probabilities, className) {
  const block = document.createElement("div");
  block.className = "result " + className;
  const heading = document.createElement("h3");
  heading.textContent = `${title}: ${label}`;
  heading.className = "result-label";
  const list = document.createElement("div");
  bars(list, probabilities, label);
  block.append(heading, list);
  container.appendChild(block);
}

function render(result) {
  if (result.faces) renderFaces(result.faces, false);
  if (result.speech) renderSpeech(result.speech);
  if (result.texts) renderTexts(result.texts);
  renderTranscript(result.transcript, (result.reasons || {}).transcript);
  renderFused(result.fused, result.reasons || {});
}

function renderTranscript(transcript, reason) {
  // The recording's words with their times (Whisper), when the request asked for them.
  const line = $("transcript");
  line.replaceChildren();
  if (!transcript) {
    line.textContent = reason ? `Transcript: ${reason}` : "";
    return;
  }
  line.append("Transcript: ");
  transcript.words.forEach((w) => {
    const word = document.createElement("span");
    word.textContent = w.word;
    word.title = `${w.start}-${w.end} s (p ${w.probability})`;
    line.appendChild(word);
  });
  if (!transcript.words.length) line.append(transcript.text || "(no words heard)");
}

function renderFaces(faces, smoothed) {
  const container = $("face-results");
  container.replaceChildren();
  if (!faces.length) container.textContent = "No face found.";
  faces.forEach((face, i) => {
    const label = smoothed ? face.smoothed_label : face.label;
    resultBlock(container, `Face ${i + 1}`, label, smoothed ? face.smoothed : face.probabilities, "face-result");
  });
  if (state.faceImage) drawFaces(state.faceImage, faces, smoothed);
}

function drawFaces(image, faces, smoothed) {
  const canvas = $("face-canvas");
  const scale = Math.min(canvas.width / image.width, canvas.height / image.height);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(image, 0, 0, image.width * scale, image.height * scale);
  ctx.lineWidth = 3;
  ctx.font = "bold 16px system-ui, sans-serif";
  for (const face of faces) {
    const label = smoothed ? face.smoothed_label : face.label;
    const [x, y, w, h] = face.box.map((v) => v * scale);
    ctx.strokeStyle = ctx.fillStyle = colorOf(label);
    ctx.strokeRect(x, y, w, h);
    const p = (smoothed ? face.smoothed : face.probabilities)[label];
    const text = `${label} ${p.toFixed(2)}`;
    ctx.fillRect(x - 1.5, Math.max(0, y - 22), ctx.measureText(text).width + 8, 22);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x + 3, Math.max(16, y - 6));
  }
}

function renderSpeech(speech) {
  $("speech-results").replaceChildren();
  resultBlock($("speech-results"), "Speech", speech.label, speech.probabilities, "speech-result");
  drawTimeline(speech.windows, speech.seconds);
}

function drawTimeline(windows, seconds) {
  const timeline = $("timeline");
  timeline.replaceChildren();
  const total = Math.max(seconds, ...windows.map((w) => w.end), 0.001);
  windows.forEach((w, i) => {
    // Overlapping windows: each is drawn from its start to the next one's start.
    const end = i + 1 < windows.length ? windows[i + 1].start : w.end;
    addSegment(timeline, w.start / total, (end - w.start) / total, w.label, `${w.start}-${w.end} s`);
  });
}

function addSegment(timeline, left, width, label, title) {
  const segment = document.createElement("div");
  segment.className = "segment";
  segment.style.left = `${100 * left}%`;
  segment.style.width = `${100 * width}%`;
  segment.style.background = colorOf(label);
  segment.textContent = label;
  segment.title = `${title}: ${label}`;
  timeline.appendChild(segment);
}

function renderTexts(texts) {
  const container = $("text-results");
  container.replaceChildren();
  texts.forEach((t, i) => {
    const title = texts.length > 1 ? `Text ${i + 1}` : "Text";
    const label = t.labels && t.labels.length > 1 ? t.labels.join(", ") : t.label;
    resultBlock(container, title, label, t.probabilities, "text-result");
  });
}

function renderFused(fused, reasons) {
  if (!fused) {
    $("fused-label").textContent = `– (${reasons.fused || "no prediction"})`;
    $("fused-bars").replaceChildren();
    $("fused-weights").replaceChildren();
    return;
  }
  $("fused-label").textContent = fused.label;
  $("fused-method").textContent = `${fused.method}; weights: ${fused.weighting}`;
  bars($("fused-bars"), fused.probabilities, fused.label);
  bars($("fused-weights"), fused.weights, null);
}

// -- uploads ---------------------------------------------------------------------------------
async function predict() {
  const form = new FormData();
  if (state.face) form.append("image", state.face, state.face.name || "image");
  if (state.face && $("face-crop").checked) form.append("detect", "none");
  if (state.audio) form.append("audio", state.audio, state.audio.name || "audio");
  if (state.audio && $("transcribe").checked) form.append("transcribe", "true");
  if (state.text) form.append("text", state.text);
  if (![...form.keys()].length) return;
  const response = await fetch("/v1/predict", { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) return showError(`${response.status}: ${body.error}`);
  showError("");
  render(body);
}

async function chooseFace(file) {
  stopWebcam();
  state.face = file;
  state.faceImage = await createImageBitmap(file);
  drawFaces(state.faceImage, [], false);
  await predict();
}

async function chooseAudio(file) {
  state.audio = file;
  try {
    const context = new AudioContext();
    const decoded = await context.decodeAudioData(await file.arrayBuffer());
    drawWaveform(decoded.getChannelData(0));
    context.close();
  } catch (error) {
    drawWaveform(new Float32Array(0));
  }
  await predict();
}

function drawWaveform(samples) {
  const canvas = $("waveform");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#4a7bd0";
  ctx.beginPath();
  const step = Math.max(1, Math.floor(samples.length / canvas.width));
  for (let x = 0; x < canvas.width && x * step < samples.length; x++) {
    let low = 0, high = 0;
    for (let i = x * step; i < Math.min(samples.length, (x + 1) * step); i++) {
      low = Math.min(low, samples[i]);
      high = Math.max(high, samples[i]);
    }
    ctx.moveTo(x, (1 - high) * canvas.height / 2);
    ctx.lineTo(x, (1 - low) * canvas.height / 2 + 1);
  }
  ctx.stroke();
}

// -- webcam: frames over a WebSocket, at most two in flight ----------------------------------
const webcam = { stream: null, socket: null, inFlight: 0, sent: [], frames: 0, started: 0, latencies: [] };

function socketUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

async function startWebcam() {
  showError("");
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  const video = $("webcam-video");
  video.srcObject = stream;
  await video.play();
  const socket = new WebSocket(socketUrl("/v1/stream/face"));
  Object.assign(webcam, { stream, socket, inFlight: 0, sent: [], frames: 0, started: performance.now(), latencies: [] });
  socket.onmessage = (event) => onWebcamResult(JSON.parse(event.data));
  socket.onopen = () => { sendFrame(); sendFrame(); };
  $("webcam-start").disabled = true;
  $("webcam-stop").disabled = false;
}

function sendFrame() {
  if (!webcam.socket || webcam.socket.readyState !== WebSocket.OPEN || webcam.inFlight >= 2) return;
  const video = $("webcam-video");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  webcam.inFlight++;
  canvas.toBlob((blob) => {
    webcam.sent.push({ canvas, at: performance.now() });  // the server answers frames in order
    blob.arrayBuffer().then((buffer) => webcam.socket && webcam.socket.send(buffer));
  }, "image/jpeg", 0.8);
}

function onWebcamResult(answer) {
  webcam.frames++;
  const frame = webcam.sent.shift();
  webcam.inFlight--;
  if (frame) webcam.latencies.push(performance.now() - frame.at);
  if (answer.error) {
    showError(`webcam: ${answer.error}`);
  } else {
    showError("");
    state.faceImage = frame ? frame.canvas : state.faceImage;
    renderFaces(answer.faces || [], true);
    renderFused(answer.fused, answer.reasons || {});
  }
  const seconds = (performance.now() - webcam.started) / 1000;
  const recent = webcam.latencies.slice(-30).sort((a, b) => a - b);
  const median = recent.length ? recent[Math.floor(recent.length / 2)] : 0;
  const stats = $("webcam-stats");
  stats.dataset.frames = webcam.frames;
  stats.textContent = `webcam: ${webcam.frames} frames, ${(webcam.frames / seconds).toFixed(1)} frames/s, ` +
    `latency ${median.toFixed(0)} ms (median of the last 30)`;
  sendFrame();
}

function stopWebcam() {
  if (webcam.socket) webcam.socket.close();
  if (webcam.stream) webcam.stream.getTracks().forEach((track) => track.stop());
  webcam.socket = webcam.stream = null;
  $("webcam-start").disabled = false;
  $("webcam-stop").disabled = true;
}

// -- microphone: 1 s hops over a WebSocket; the server keeps the sliding window -------------
const mic = { stream: null, socket: null, context: null, pending: [], window: new Float32Array(0), sentAt: [] };

async function startMicrophone() {
  showError("");
  const audio = state.model.audio;
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const context = new AudioContext({ sampleRate: audio.sample_rate });
  const rate = context.sampleRate;
  const socket = new WebSocket(socketUrl(`/v1/stream/speech?sample_rate=${rate}`));
  socket.onmessage = (event) => onMicResult(JSON.parse(event.data));
  const source = context.createMediaStreamSource(stream);
  const processor = context.createScriptProcessor(4096, 1, 1);
  Object.assign(mic, { stream, socket, context, rate, pending: [], count: 0, window: new Float32Array(0), sentAt: [] });
  $("timeline").replaceChildren();
  processor.onaudioprocess = (event) => collectHop(new Float32Array(event.inputBuffer.getChannelData(0)));
  source.connect(processor);
  processor.connect(context.destination);
  $("mic-start").disabled = true;
  $("mic-stop").disabled = false;
}

function collectHop(chunk) {
  mic.pending.push(chunk);
  mic.count += chunk.length;
  const keep = Math.round(state.model.audio.window_seconds * mic.rate);
  mic.window = concat([mic.window, chunk]).slice(-keep);
  drawWaveform(mic.window);
  if (mic.count < mic.rate || mic.socket.readyState !== WebSocket.OPEN) return;
  const all = concat(mic.pending);
  const hop = all.slice(0, mic.rate);
  mic.pending = [all.slice(mic.rate)];
  mic.count = mic.pending[0].length;
  mic.sentAt.push(performance.now());
  mic.socket.send(hop.buffer);
}

function concat(arrays) {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) { out.set(a, offset); offset += a.length; }
  return out;
}

const MIC_TIMELINE_SECONDS = 20;

function onMicResult(answer) {
  const latency = performance.now() - mic.sentAt.shift();
  $("mic-stats").textContent = `microphone: window ending at ${answer.window.end} s, ` +
    `update latency ${latency.toFixed(0)} ms`;
  if (answer.error) return showError(`microphone: ${answer.error}`);
  showError("");
  $("speech-results").replaceChildren();
  resultBlock($("speech-results"), "Speech (last window)", answer.speech.label, answer.speech.probabilities,
    "speech-result");
  const timeline = $("timeline");
  const end = answer.window.end;
  // A rolling timeline of the last MIC_TIMELINE_SECONDS: each hop's second coloured by its window's label.
  addSegment(timeline, 0, 0, answer.speech.label, `${end - 1}-${end} s`);
  const segments = [...timeline.children];
  segments.forEach((segment, i) => {
    const age = segments.length - 1 - i;
    segment.style.left = `${100 * (1 - (age + 1) / MIC_TIMELINE_SECONDS)}%`;
    segment.style.width = `${100 / MIC_TIMELINE_SECONDS}%`;
    if (age >= MIC_TIMELINE_SECONDS) segment.remove();
  });
  renderFused(answer.fused, answer.reasons || {});
}

function stopMicrophone() {
  if (mic.socket) mic.socket.close();
  if (mic.stream) mic.stream.getTracks().forEach((track) => track.stop());
  if (mic.context) mic.context.close();
  mic.socket = mic.stream = mic.context = null;
  $("mic-start").disabled = false;
  $("mic-stop").disabled = true;
}

// -- start -----------------------------------------------------------------------------------
function describe(model) {
  const names = model.models.map((m) => `${m.name} (${m.model}, ${m.dataset}: ${m.classes.length} classes` +
    (m.metrics && m.metrics.accuracy !== undefined ? `, validation accuracy ${m.metrics.accuracy.toFixed(3)}` : "") +
    ")");
  return `Serving ${names.join("; ")}. Fusion: ${model.fusion}.`;
}

async function start() {
  const response = await fetch("/v1/model");
  const model = await response.json();
  state.model = model;
  $("model-info").textContent = describe(model);
  const offered = new Set(model.page_modalities);
  $("face-panel").hidden = !offered.has("face");
  $("speech-panel").hidden = !offered.has("speech");
  $("text-panel").hidden = !offered.has("text");
  if (!model.audio) $("mic-start").disabled = true;
  $("face-file").onchange = (e) => e.target.files[0] && chooseFace(e.target.files[0]).catch((x) => showError(x.message));
  $("audio-file").onchange = (e) => e.target.files[0] && chooseAudio(e.target.files[0]).catch((x) => showError(x.message));
  $("face-crop").onchange = () => state.face && predict().catch((x) => showError(x.message));
  $("transcribe").onchange = () => state.audio && predict().catch((x) => showError(x.message));
  $("text-submit").onclick = () => { state.text = $("text-input").value.trim(); predict().catch((x) => showError(x.message)); };
  $("webcam-start").onclick = () => startWebcam().catch((x) => showError(`webcam: ${x.message}`));
  $("webcam-stop").onclick = stopWebcam;
  $("mic-start").onclick = () => startMicrophone().catch((x) => showError(`microphone: ${x.message}`));
  $("mic-stop").onclick = stopMicrophone;
  document.body.dataset.ready = "true";
}

start().catch((error) => showError(`could not load the model description: ${error.message}`));
