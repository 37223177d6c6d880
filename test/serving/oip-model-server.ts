import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

// A model server as the process runtime runs one: it speaks the Open
// Inference Protocol on $PORT and serves the model at $STRATA_MODEL_PATH, a
// JSON file {"weights": [...], "bias": b}: y = x · weights + bias per row of
// x. An |x| above 1e6 is refused with 400, to test how errors of the model
// are passed on. It only starts when Strata gives it a port, so the test
// runner, which loads every file under test/, runs nothing here.

function main(): void {
  const port = Number(process.env.STRATA_PORT);
  const name = process.env.STRATA_MODEL_NAME!;
  const { weights, bias } = JSON.parse(readFileSync(process.env.STRATA_MODEL_PATH!, 'utf8')) as { weights: number[]; bias: number };
  const metadata = {
    name,
    versions: [process.env.STRATA_MODEL_VERSION],
    platform: 'node',
    inputs: [{ name: 'x', datatype: 'FP64', shape: [-1, weights.length] }],
    outputs: [{ name: 'y', datatype: 'FP64', shape: [-1] }],
  };
  const send = (res: import('node:http').ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/v2/health/ready') return send(res, 200, { ready: true });
      if (req.method === 'GET' && req.url === `/v2/models/${name}`) return send(res, 200, metadata);
      if (req.method === 'POST' && req.url === `/v2/models/${name}/infer`) {
        const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { inputs: { name: string; shape: number[]; data: number[] }[] };
        const x = body.inputs.find((i) => i.name === 'x')!;
        if (x.data.some((v) => Math.abs(v) > 1e6)) return send(res, 400, { error: 'x out of range: this model takes values up to 1e6' });
        const rows = x.shape[0]!;
        const y = Array.from({ length: rows }, (_, r) => weights.reduce((s, w, i) => s + w * x.data[r * weights.length + i]!, bias));
        return send(res, 200, { model_name: name, outputs: [{ name: 'y', shape: [rows], datatype: 'FP64', data: y }] });
      }
      send(res, 404, { error: `no route ${req.method} ${req.url}` });
    });
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write(`model ${name} v${process.env.STRATA_MODEL_VERSION} listening on ${port}\n`));
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
  });
}

if (process.env.STRATA_PORT) main();
