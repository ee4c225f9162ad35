// Times the edge's protocol core as wasm in V8, a step at a time
// (`make bench-wasm-core`; the steps are `src/lib.rs`'s). Usage:
//   node bench/wasm-core/run.mjs path/to/graph_relay_wasm_core_bench.wasm
// Each step runs ITERATIONS times per round after a warm-up, ROUNDS rounds
// in turn; a step's figure is its fastest round, in microseconds per body.
import { readFileSync } from "node:fs";

const STEPS = [
  "from_utf8",
  "check_depth",
  "envelope::read",
  "accept_body",
  "accept_body + encode",
  "rich: accept + encode",
  "rich + known token",
];
const ROUNDS = 12;
const ITERATIONS = 20000;

const module = await WebAssembly.compile(readFileSync(process.argv[2]));
// The core imports only what it never calls here (randomness for request
// ids, through wasm-bindgen): each import throws if it ever is.
const imports = {};
for (const { module: from, name } of WebAssembly.Module.imports(module)) {
  (imports[from] ??= {})[name] = () => {
    throw new Error(`the benchmark called the import ${from}.${name}`);
  };
}
const { run } = (await WebAssembly.instantiate(module, imports)).exports;

const best = STEPS.map(() => Infinity);
for (let round = 0; round < ROUNDS; round++) {
  STEPS.forEach((name, step) => {
    run(step, ITERATIONS / 4);
    const started = performance.now();
    const succeeded = run(step, ITERATIONS);
    const micros = ((performance.now() - started) * 1000) / ITERATIONS;
    if (succeeded !== ITERATIONS) throw new Error(`${name} failed on the body`);
    best[step] = Math.min(best[step], micros);
  });
}
console.log("step                   µs per 10-item body (fastest of %d rounds)", ROUNDS);
STEPS.forEach((name, step) => console.log(`${name.padEnd(23)}${best[step].toFixed(2)}`));
