import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as ort from 'onnxruntime-node';

// The floor of any inference server here, for bench/serving: a bare node:http
// server that takes the OIP infer body (JSON, or the binary tensor data
// extension), runs the ONNX model in-process with onnxruntime-node and
// answers with the OIP JSON response. Nothing else: no routing, checks,
// metrics or lineage. With --batch, concurrent requests share one run (up to
// 64 rows, whatever is queued when the previous run ends).
// Usage: node dist/bench/serving-floor.js MODEL.onnx [--batch]   (prints "LISTEN url")

const [modelPath, flag] = process.argv.slice(2);
const batching = flag === '--batch';
const session = await ort.InferenceSession.create(readFileSync(modelPath!));
const input = session.inputNames[0]!;
const output = session.outputNames[0]!;
const MAX_BATCH = 64;

type Reply = (values: number[]) => void;
const queue: { row: Float32Array; reply: Reply }[] = [];
let running = false;

async function runQueued(): Promise<void> {
  if (running || queue.length === 0) return;
  running = true;
  const batch = queue.splice(0, MAX_BATCH);
  const width = batch[0]!.row.length;
  const x = new Float32Array(batch.length * width);
  batch.forEach((b, i) => x.set(b.row, i * width));
  const out = (await session.run({ [input]: new ort.Tensor('float32', x, [batch.length, width]) }))[output]!;
  const data = out.data as Float32Array;
  const per = data.length / batch.length;
  batch.forEach((b, i) => b.reply(Array.from(data.subarray(i * per, (i + 1) * per))));
  running = false;
  void runQueued();
}

/** The input row: from the JSON `data`, or from the bytes after the JSON header. */
function rowOf(body: Buffer, headerLength: number | undefined): Float32Array {
  if (headerLength === undefined) {
    const request = JSON.parse(body.toString()) as { inputs: { data: number[] }[] };
    return Float32Array.from(request.inputs[0]!.data);
  }
  JSON.parse(body.toString('utf8', 0, headerLength));
  return new Float32Array(body.buffer.slice(body.byteOffset + headerLength, body.byteOffset + body.length));
}

const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', async () => {
    const header = req.headers['inference-header-content-length'];
    const row = rowOf(Buffer.concat(parts), header === undefined ? undefined : Number(header));
    const reply: Reply = (values) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ model_name: 'floor', outputs: [{ name: output, shape: [1, values.length], datatype: 'FP32', data: values }] }));
    };
    if (batching) {
      queue.push({ row, reply });
      void runQueued();
    } else {
      const out = (await session.run({ [input]: new ort.Tensor('float32', row, [1, row.length]) }))[output]!;
      reply(Array.from(out.data as Float32Array));
    }
  });
});
server.listen(0, '127.0.0.1', () => console.log(`LISTEN http://127.0.0.1:${(server.address() as AddressInfo).port}`));
